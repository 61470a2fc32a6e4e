/**
 * Which mailbox names the store refuses, as Dovecot 2.3's lib-storage does
 * (mail-storage.c mailbox_verify_name and mailbox_verify_create_name,
 * mailbox-list.c mailbox_list_is_valid_fs_name; mail_full_filesystem_access
 * = no): the reasons are Dovecot's own texts, the IMAP layer prefixes them
 * ("Invalid mailbox name: …"). A name the client sends is checked before any
 * path is built from it, so `~`, `/`, `..`-style and control-character names
 * never reach the filesystem.
 */
import { MailStoreError } from './errors.js';

/** MAILBOX_LIST_NAME_MAX_LENGTH: a new mailbox's whole name, UTF-8 bytes. */
export const MAILBOX_NAME_MAX_LENGTH = 4096;
/** MAILBOX_MAX_HIERARCHY_NAME_LENGTH: each level of a new mailbox's name (storage form). */
export const MAILBOX_LEVEL_MAX_LENGTH = 255;
/** NAME_MAX: longer directory names do not exist on disk (ENAMETOOLONG), whatever the mailbox. */
export const FS_NAME_MAX = 255;

/**
 * mailbox_verify_name's reason for refusing `name` (INBOX always passes), or
 * null. `sep` is the namespace's separator, `storageSep` the layout's
 * (Maildir++ '.', fs '/'): with two different ones the layout's can't be in
 * a name, it would become a hierarchy level on disk.
 */
export function invalidNameReason(name: string, sep: string, storageSep = '.'): string | null {
  if (name.toUpperCase() === 'INBOX') return null;
  if (sep !== storageSep && name.includes(storageSep)) return `Character not allowed in mailbox name: '${storageSep}'`;
  if (name.startsWith(sep)) return 'Begins with hierarchy separator';
  if (name.includes(sep + sep)) return 'Has adjacent hierarchy separators';
  if (name.endsWith(sep)) return 'Ends with hierarchy separator';
  if (name === '') return 'Name is empty';
  // on the storage name, whose levels are joined by the layout's separator
  if (storageSep !== '/' && name.split(sep).some((l) => l.includes('/'))) return "Name must not have '/' characters";
  if (name.startsWith('~')) return "Begins with '~'";
  return null;
}

/** Throws Dovecot's INVALIDNAME error for a name mailbox_verify_name refuses. */
export function verifyMailboxName(name: string, sep: string, storageSep = '.'): void {
  const why = invalidNameReason(name, sep, storageSep);
  // that one is said without "Invalid mailbox name: " (mail-storage.c)
  if (why?.startsWith('Character not allowed')) throw new MailStoreError('NOTPOSSIBLE', why);
  if (why) throw new MailStoreError('INVALIDNAME', why);
}

/**
 * mailbox_verify_create_name's extra rules for CREATE and a RENAME target:
 * no control characters in the (UTF-8) name, at most 4096 bytes in all and
 * 255 per level.
 */
export function verifyCreateName(utf8Name: string, storageLevels: string[]): void {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f]/.test(utf8Name)) throw new MailStoreError('NOTPOSSIBLE', 'Control characters not allowed in new mailbox names');
  if (Buffer.byteLength(utf8Name) > MAILBOX_NAME_MAX_LENGTH || storageLevels.some((l) => Buffer.byteLength(l) > MAILBOX_LEVEL_MAX_LENGTH)) {
    throw new MailStoreError('NOTPOSSIBLE', 'Mailbox name too long');
  }
}
