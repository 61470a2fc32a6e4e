/**
 * Storage failures as IMAP NO replies with Dovecot's response codes and
 * texts (RFC 5530): the store only has domain error codes; the wording is
 * decided here.
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { mutf7ToUtf8 } from '../../mailstore/api/mailbox-utf7.js';
import type { CommandContext } from './types.js';
import { ArgError, BadCharsetError } from './args.js';

/** A mailbox name as Dovecot shows it in error texts: UTF-8, whatever the wire form. */
export function displayName(name: string): string {
  try { return mutf7ToUtf8(name); } catch { return name; }
}

export async function replyError(ctx: CommandContext, e: unknown, mailbox?: string): Promise<void> {
  if (e instanceof BadCharsetError) { await ctx.no('Unknown charset', { name: 'BADCHARSET' }); return; }
  if (e instanceof ArgError) { await ctx.bad(`Error in IMAP command ${ctx.name}: ${e.message}`); return; }
  if (e instanceof RangeError && /messageset|uidset/.test(e.message)) { await ctx.bad(`Error in IMAP command ${ctx.name}: ${e.message}`); return; }
  if (!(e instanceof MailStoreError)) throw e;
  // SUBSCRIBE reports a name it refuses as a mailbox that does not exist (cmd-subscribe.c)
  const code = e.code === 'INVALIDNAME' && ctx.name === 'SUBSCRIBE' ? 'NONEXISTENT' : e.code;
  switch (code) {
    // Dovecot 2.3's SELECT/EXAMINE answer carries no response code
    // Dovecot names the mailbox in UTF-8 here (with or without UTF8=ACCEPT), not in its mUTF-7 wire form
    // (SELECT, EXAMINE, STATUS and SUBSCRIBE word it themselves, without [NONEXISTENT])
    case 'NONEXISTENT':
      // a name the filesystem cannot hold (ENAMETOOLONG) fails CREATE with Dovecot's bare "Not found"
      if (ctx.name === 'CREATE') { await ctx.no('Not found'); return; }
      await ctx.no(`Mailbox doesn't exist: ${displayName(mailbox ?? '')}`, ['SELECT', 'EXAMINE', 'STATUS', 'SUBSCRIBE'].includes(ctx.name) ? undefined : { name: 'NONEXISTENT' });
      return;
    // client_find_namespace_full: the name fell in Dovecot's autocreated prefix="" namespace
    case 'NONAMESPACE': await ctx.no(`Client tried to access nonexistent namespace. (Mailbox name should probably be prefixed with: ${e.message})`); return;
    case 'INVALIDNAME': await ctx.no(`Invalid mailbox name: ${e.message}`, { name: 'CANNOT' }); return;
    case 'BADENCODING': await ctx.no('Mailbox name is not valid mUTF-7'); return;
    case 'ALREADYEXISTS': await ctx.no('Mailbox already exists', { name: 'ALREADYEXISTS' }); return;
    case 'NOTPOSSIBLE': await ctx.no(e.message, { name: 'CANNOT' }); return;
    case 'LOCKTIMEOUT': await ctx.no('Timeout while waiting for lock', { name: 'INUSE' }); return;
    case 'NOSPACE': await ctx.no('Not enough disk space', { name: 'OVERQUOTA' }); return;
    case 'EXPUNGED': await ctx.no('Some of the requested messages no longer exist', { name: 'EXPUNGEISSUED' }); return;
    case 'CRYPT':
      ctx.session.log.error(e.message);
      await ctx.no('Internal error occurred. Refer to server log for more information.', { name: 'SERVERBUG' });
      return;
    default:
      ctx.session.log.error(e.message);
      await ctx.no('Internal error occurred. Refer to server log for more information.', { name: 'SERVERBUG' });
  }
}
