/**
 * Domain errors of the mail store. Protocol layers map `code` to their own
 * wording (IMAP [NONEXISTENT], [ALREADYEXISTS], [OVERQUOTA] …); storage code
 * never produces protocol text. Messages name the file/mailbox concerned.
 */

export type MailStoreErrorCode =
  | 'NONEXISTENT'     // mailbox or message does not exist
  | 'NONAMESPACE'     // the name is in no usable namespace (message: the inbox namespace's prefix)
  | 'ALREADYEXISTS'   // create/rename target exists
  | 'INVALIDNAME'     // mailbox name not allowed (Dovecot's mailbox_verify_name reason; cur/new/tmp in fs layout)
  | 'BADENCODING'     // mailbox name is not valid mUTF-7 (control characters, 8-bit bytes, broken &…-)
  | 'NOTPOSSIBLE'     // e.g. renaming INBOX, >26 keywords in file names
  | 'LOCKTIMEOUT'     // dovecot-uidlist.lock could not be taken
  | 'NOSPACE'         // ENOSPC/EDQUOT while saving: nothing became visible
  | 'CORRUPT'         // a control file could not be parsed (repaired where possible)
  | 'EXPUNGED'        // message file vanished while being read
  | 'CRYPT'           // mail-crypt: key not available, wrong password, tampered file (GCM tag)
  | 'IO';             // any other filesystem failure

export class MailStoreError extends Error {
  constructor(readonly code: MailStoreErrorCode, message: string, readonly path?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MailStoreError';
  }
}

/** Wraps a Node fs error into a MailStoreError naming what was being done. */
export function ioError(what: string, path: string, err: unknown): MailStoreError {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new MailStoreError('NOSPACE', `${what}: no space left (${path})`, path, { cause: err });
  // Dovecot treats a path too long for the filesystem as a mailbox that does not exist
  if (code === 'ENOENT' || code === 'ENAMETOOLONG') return new MailStoreError('NONEXISTENT', `${what}: ${path} does not exist`, path, { cause: err });
  return new MailStoreError('IO', `${what} failed for ${path}: ${(err as Error)?.message ?? String(err)}`, path, { cause: err });
}
