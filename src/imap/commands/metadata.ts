/**
 * GETMETADATA and SETMETADATA (RFC 5464) as Dovecot 2.3.19 answers them
 * (checked against its imap): options DEPTH (0, 1, infinity) and MAXSIZE
 * with `[METADATA LONGENTRIES n]`, entry names validated with Dovecot's BAD
 * texts and lowercased, values always sent as literals, one untagged
 * METADATA for the whole command (none when nothing is to be returned), a
 * non-existent entry NIL only without DEPTH, Dovecot's NO texts for
 * internal and read-only entries and for metadata that is not enabled.
 * The storage and what stays hidden is src/mailstore/metadata.ts.
 */
import { MailStoreError } from '../../mailstore/errors.js';
import { MetadataError, type MetadataEntry } from '../../mailstore/metadata.js';
import type { ImapArg } from '../wire/parser.js';
import { astr, atom, list, NIL, str, type ImapValue } from '../wire/encoder.js';
import { ArgError, astring } from './args.js';
import { replyError } from './errors.js';
import { AUTHED, type Command, type CommandContext } from './types.js';

/** Dovecot's imap_metadata_verify_entry_name, in its order of checks. */
function entryName(a: ImapArg | undefined): string {
  if (a && a.type === 'nil') return entryName({ type: 'string', value: Buffer.alloc(0) });
  const name = astring(a);
  if (name === null) throw new ArgError('Entry name isn\'t astring');
  if (!name.startsWith('/')) throw new ArgError('Entry name must begin with \'/\'');
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x2f && name.charCodeAt(i + 1) === 0x2f) throw new ArgError('Entry name can\'t contain consecutive \'/\'');
    if (c < 0x20 || c === 0x7f) throw new ArgError('Entry name can\'t contain control chars');
    if (c === 0x2a) throw new ArgError('Entry name can\'t contain \'*\'');
    if (c === 0x25) throw new ArgError('Entry name can\'t contain \'%\'');
  }
  if (name.endsWith('/')) throw new ArgError('Entry name can\'t end with \'/\'');
  const lc = name.toLowerCase();
  if (!/^\/(private|shared)(\/|$)/.test(lc)) throw new ArgError('Entry name must begin with /private or /shared');
  return lc;
}

/** "" is the server; INBOX in any case is INBOX. */
function mailboxOf(ctx: CommandContext, a: ImapArg | undefined): string | null {
  const raw = astring(a);
  if (raw === null) throw new ArgError('Invalid arguments.');
  const m = ctx.session.mailboxIn(raw);
  return m === '' ? null : m.toUpperCase() === 'INBOX' ? 'INBOX' : m;
}

async function notEnabled(ctx: CommandContext): Promise<boolean> {
  const md = ctx.session.metadata;
  if (typeof md === 'object') return false;
  await ctx.no(md === 'disabled' ? 'Generic mailbox attributes not enabled' : 'Mailbox attributes not enabled', { name: 'CANNOT' });
  return true;
}

function metadataReply(ctx: CommandContext, mailbox: string | null, items: ImapValue[]): ImapValue[] {
  return [atom('METADATA'), mailbox === null ? str('') : astr(ctx.session.mailboxOut(mailbox)), list(items)];
}

async function getMetadata(ctx: CommandContext): Promise<void> {
  const s = ctx.session;
  let args = ctx.args;
  let depth = 0;
  let maxSize = Infinity;
  if (args[0]?.type === 'list') {
    const opts = args[0].items;
    args = args.slice(1);
    for (let i = 0; i < opts.length; i++) {
      const name = opts[i].type === 'atom' ? (opts[i] as { value: string }).value.toUpperCase() : '';
      const v = astring(opts[i + 1])?.toLowerCase();
      if (name === 'DEPTH') {
        if (v !== '0' && v !== '1' && v !== 'infinity') throw new ArgError('Invalid value for DEPTH option');
        depth = v === 'infinity' ? Infinity : Number(v);
        i++;
      } else if (name === 'MAXSIZE') {
        if (v === undefined || !/^\d+$/.test(v)) throw new ArgError('Invalid value for MAXSIZE option');
        maxSize = Number(v);
        i++;
      } else throw new ArgError('Unknown option');
    }
  }
  if (args.length !== 2) throw new ArgError('Invalid arguments');
  const mailbox = mailboxOf(ctx, args[0]);
  const entries = args[1].type === 'list' ? args[1].items.map(entryName) : [entryName(args[1])];
  try {
    if (await notEnabledAfterMailboxCheck(ctx, mailbox)) return;
    const md = s.metadata as Exclude<typeof s.metadata, string>;
    const found = await md.get(mailbox, entries, depth);
    let longest = 0;
    const items: ImapValue[] = [];
    for (const { entry, value } of found) {
      const bytes = value === null ? null : Buffer.from(value, 'utf8');
      if (bytes && bytes.length > maxSize) { longest = Math.max(longest, bytes.length); continue; }
      items.push(astr(entry), bytes === null ? NIL : { type: 'literal', size: bytes.length, body: bytes });
    }
    if (items.length) await s.untagged(metadataReply(ctx, mailbox, items));
    await ctx.ok('Getmetadata completed', longest ? { name: 'METADATA', args: `LONGENTRIES ${longest}` } : undefined);
  } catch (e) {
    await metadataError(ctx, e, mailbox);
  }
}

/** A missing mailbox is reported before "not enabled", as Dovecot does. */
async function notEnabledAfterMailboxCheck(ctx: CommandContext, mailbox: string | null): Promise<boolean> {
  const md = ctx.session.metadata;
  if (typeof md === 'object') { await md.checkMailbox(mailbox); return false; }
  if (mailbox !== null) await ctx.session.store!.mailboxGuid(mailbox);
  return notEnabled(ctx);
}

async function setMetadata(ctx: CommandContext): Promise<void> {
  const s = ctx.session;
  const [mb, pairs] = ctx.args;
  if (ctx.args.length !== 2 || pairs.type !== 'list') throw new ArgError('Invalid arguments');
  const mailbox = mailboxOf(ctx, mb);
  const changes: MetadataEntry[] = [];
  for (let i = 0; i < pairs.items.length; i += 2) {
    const v = pairs.items[i + 1];
    if (!v) throw new ArgError('Entry value missing');
    const entry = entryName(pairs.items[i]);
    if (v.type === 'nil') { changes.push({ entry, value: null }); continue; }
    const value = astring(v);
    if (value === null || v.type === 'atom') throw new ArgError('Entry value isn\'t nstring');
    changes.push({ entry, value });
  }
  try {
    if (await notEnabledAfterMailboxCheck(ctx, mailbox)) return;
    await (s.metadata as Exclude<typeof s.metadata, string>).set(mailbox, changes);
    await ctx.ok('Setmetadata completed');
  } catch (e) {
    await metadataError(ctx, e, mailbox);
  }
}

async function metadataError(ctx: CommandContext, e: unknown, mailbox: string | null): Promise<void> {
  if (e instanceof MetadataError) {
    const text = e.code === 'INTERNAL' ? 'Internal mailbox attributes cannot be accessed'
      : e.code === 'NUL' ? 'Attribute string value has NULs' : `The ${e.key} attribute cannot be changed`;
    await ctx.no(text, { name: 'CANNOT' });
    return;
  }
  // Dovecot's GET/SETMETADATA answer a missing mailbox without a response code
  if (e instanceof MailStoreError && e.code === 'NONEXISTENT') { await ctx.no(`Mailbox doesn't exist: ${ctx.session.mailboxOut(mailbox ?? '')}`); return; }
  await replyError(ctx, e, mailbox ?? '');
}

function withArgErrors(run: (ctx: CommandContext) => Promise<void>): (ctx: CommandContext) => Promise<void> {
  return async (ctx) => {
    try { await run(ctx); } catch (e) {
      if (e instanceof ArgError) { await ctx.bad(`Error in IMAP command ${ctx.name}: ${e.message.replace(/\.$/, '')}.`); return; }
      throw e;
    }
  };
}

export const metadataCommands: Record<string, Command> = {
  GETMETADATA: { states: AUTHED, run: withArgErrors(getMetadata) },
  SETMETADATA: { states: AUTHED, run: withArgErrors(setMetadata) },
};
