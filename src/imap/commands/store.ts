/**
 * STORE and UID STORE (RFC 3501 §6.4.6): FLAGS, +FLAGS, -FLAGS and their
 * .SILENT forms on system flags and keywords (\Recent can't be stored). The
 * new flags are reported unless SILENT; changes by others come with the next
 * update, never mixed into this reply. RFC 7162 CONDSTORE: (UNCHANGEDSINCE n)
 * with [MODIFIED set], MODSEQ in the replies, as Dovecot words them.
 * With IMAPSieve, messages whose flags changed go to the mailbox rules
 * (cause FLAG, imap.changedflags as Pigeonhole writes it) before the replies.
 */
import { SYSTEM_FLAGS, type SystemFlag } from '../../mailstore/api/flags.js';
import { atom, list, num } from '../wire/encoder.js';
import { SELECTED, type Command, type CommandContext } from './types.js';
import { ArgError, astring, flagList, modseqArg, seqSet } from './args.js';
import { MailStoreError } from '../../mailstore/errors.js';
import type { ImapArg } from '../wire/parser.js';
import type { MailMessage } from '../../mailstore/api/mailbox.js';
import { uidSetText } from '../session.js';
import { announcedFlags, announceKeywords, keywordsIn } from '../keyword-flags.js';
import { replyError } from './errors.js';

/** `(UNCHANGEDSINCE n)` (RFC 7162 §3.1.3), the only STORE modifier. */
function storeModifiers(a: ImapArg): number {
  if (a.type !== 'list') throw new ArgError('Invalid arguments.');
  let since: number | undefined;
  for (let i = 0; i < a.items.length; i += 2) {
    if ((astring(a.items[i]) ?? '').toUpperCase() !== 'UNCHANGEDSINCE') throw new ArgError('Unknown STORE modifier');
    since = modseqArg(a.items[i + 1], 'Invalid modseq');
  }
  if (since === undefined) throw new ArgError('Unknown STORE modifier');
  return since;
}

/**
 * imap.changedflags as Pigeonhole's imap_sieve_mail_update_flags/_keywords
 * build it: the system flags that changed (either way) in IMAP order, then
 * the keywords removed, then those added.
 */
function changedFlags(oldSys: Set<SystemFlag>, oldKw: string[], newSys: Set<SystemFlag>, newKw: string[]): string {
  const out = SYSTEM_FLAGS.filter((f) => oldSys.has(f) !== newSys.has(f)) as string[];
  if (oldKw.join(' ') !== newKw.join(' ')) {
    out.push(...oldKw.filter((k) => !newKw.includes(k)), ...newKw.filter((k) => !oldKw.includes(k)));
  }
  return out.join(' ');
}

async function store(ctx: CommandContext, uidMode: boolean): Promise<void> {
  const s = ctx.session;
  const sel = s.selected!;
  try {
    const set = seqSet(ctx.args[0], uidMode);
    let args = ctx.args.slice(1);
    const unchangedSince = args[0]?.type === 'list' ? storeModifiers(args[0]) : undefined;
    if (unchangedSince !== undefined) args = args.slice(1);
    const op = astring(args[0])?.toUpperCase() ?? '';
    const m = /^([+-]?)FLAGS(\.SILENT)?$/.exec(op);
    if (!m) throw new ArgError('Invalid arguments.');
    const flags = flagList(args[1]);
    if (sel.readOnly) { await ctx.ok('Store ignored with read-only mailbox'); return; } // Dovecot's answer
    if (unchangedSince !== undefined) await s.enableCondstore();
    const sys = new Set<SystemFlag>();
    const kws: string[] = [];
    for (const f of flags) {
      const canon = SYSTEM_FLAGS.find((x) => x.toLowerCase() === f.toLowerCase());
      if (canon) sys.add(canon);
      else if (f.startsWith('\\')) { if (f.toLowerCase() !== '\\recent') throw new ArgError(`Invalid system flag ${f}`); }
      else kws.push(f);
    }
    await sel.refresh();
    const targets = sel.resolve(set, uidMode);
    const condstore = s.condstore;
    const modified: number[] = [];
    const replies: { seq: number; msg: MailMessage }[] = [];
    const stored: MailMessage[] = [];
    const sieveFlags = s.imapSieve?.wants('FLAG', sel.name, sel.name) ? new Map<number, string>() : null;
    for (const { seq, m: msg } of targets) {
      // RFC 7162 §3.1.3: changed since the client's modseq = not stored, reported in [MODIFIED]
      if (unchangedSince !== undefined && msg.modseq > unchangedSince) { modified.push(uidMode ? msg.uid : seq); continue; }
      let nf: Set<SystemFlag>;
      let nk: string[];
      if (m[1] === '+') { nf = new Set([...msg.flags, ...sys]); nk = [...new Set([...msg.keywords, ...kws])]; }
      else if (m[1] === '-') { nf = new Set([...msg.flags].filter((x) => !sys.has(x))); nk = msg.keywords.filter((k) => !kws.includes(k)); }
      else { nf = sys; nk = kws; }
      const same = nf.size === msg.flags.size && [...nf].every((x) => msg.flags.has(x)) && nk.join(' ') === msg.keywords.join(' ');
      if (!same && sieveFlags) sieveFlags.set(msg.uid, changedFlags(msg.flags, msg.keywords, nf, nk));
      if (!same) {
        try {
          await sel.folder.setFlags(msg, nf, nk, { deferModseq: true });
        } catch (e) {
          if (!(e instanceof MailStoreError && e.code === 'EXPUNGED')) throw e;
          // expunged by another session, not yet reported here (RFC 2180 §4.2): Dovecot's UID STORE
          // skips it; its STORE changes the flags this session sees until the EXPUNGE, and both answer OK
          if (uidMode) { sieveFlags?.delete(msg.uid); continue; }
          msg.flags = nf;
          msg.keywords = nk;
        }
        stored.push(msg);
      }
      // Dovecot reports only what changed; with CONDSTORE the new MODSEQ even when SILENT. A message
      // this STORE left alone that another session changed comes in its place too (Dovecot's replies
      // are its sync's, in sequence order)
      if (!same && (condstore || !m[2])) replies.push({ seq, msg });
      else if (same && !m[2] && sel.hasUpdate(msg)) { replies.push({ seq, msg }); stored.push(msg); }
    }
    // the modseqs are on disk before any client sees them
    await sel.folder.commitModseqs();
    // with their new MODSEQs: this client's own changes are not repeated by the next sync (a message
    // it left as it was is not noted: another session's change to it is still to be reported)
    for (const msg of stored) sel.noteFlags(msg);
    if (sieveFlags?.size) await s.imapSieve!.run({ cause: 'FLAG', mailbox: sel.name, from: sel.name, uids: [...sieveFlags.keys()], changedFlags: sieveFlags });
    // its own new keywords, and any another session set on the messages it reports
    // (its own first, as Dovecot's view adds them before it syncs others')
    await announceKeywords(s, sel, [...kws, ...sel.folder.keywordOrder, ...keywordsIn(replies.map(({ msg }) => msg.keywords))]);
    for (const { seq, msg } of replies) {
      const uid = uidMode || s.qresync ? [atom('UID'), num(msg.uid)] : [];
      const modseq = condstore ? [atom('MODSEQ'), list([num(msg.modseq)])] : [];
      if (condstore) s.noteModseq(msg.modseq);
      // changed meanwhile by another session: its new keywords announced first
      const fl = m[2] ? [] : [atom('FLAGS'), list((await announcedFlags(s, sel, msg)).map(atom))];
      await s.untagged([num(seq), atom('FETCH'), list([...(condstore ? uid : uidMode ? uid : []), ...modseq, ...fl])]);
    }
    // Dovecot ends every command with a sync: others' changes (expunges only after UID commands)
    if (modified.length) { await s.sendUpdates(uidMode, undefined, false, uidMode); await ctx.ok('Conditional store failed', { name: 'MODIFIED', args: uidSetText(modified) }); }
    else await ctx.ok('Store completed', await s.sendUpdates(uidMode, undefined, true, uidMode));
  } catch (e) {
    await replyError(ctx, e);
  }
}

export const storeCommands: Record<string, Command> = {
  STORE: { states: SELECTED, run: (ctx) => store(ctx, false) },
  'UID STORE': { states: SELECTED, run: (ctx) => store(ctx, true) },
};
