/**
 * Selecting and leaving a mailbox (RFC 3501 §6.3.1-2, §6.4.2-3; RFC 3691
 * UNSELECT; RFC 4315 UID EXPUNGE; RFC 7162 SELECT (CONDSTORE) / (QRESYNC …)
 * with HIGHESTMODSEQ, VANISHED (EARLIER) and the changed flags): the
 * SELECT/EXAMINE untagged data in Dovecot's order, CLOSE's silent expunge,
 * EXPUNGE of \Deleted messages.
 */
import { announcedFlags, sendFlagLines } from '../keyword-flags.js';
import { atom, list, num, str, type ImapValue } from '../wire/encoder.js';
import { Selected } from '../selected.js';
import { SYSTEM_FLAGS } from '../../mailstore/api/flags.js';
import { AUTHED, SELECTED, type Command, type CommandContext } from './types.js';
import { ArgError, astring, mailboxArg, modseqArg, seqSet } from './args.js';
import type { ImapArg } from '../wire/parser.js';
import { normalizeSequenceSet, STAR, type SequenceSet } from '../wire/sequence.js';
import { uidSetText } from '../session.js';
import { vanishedIn } from './fetch.js';
import { replyError } from './errors.js';

interface QresyncParams { uidValidity: number; modseq: number; known?: SequenceSet }

/** SELECT/EXAMINE parameters (RFC 7162 §3.1.8, §3.2.5): CONDSTORE, QRESYNC (uidvalidity modseq [known-uids [seq-match]]). */
function selectParams(a: ImapArg, qresyncOn: boolean): { condstore: boolean; qresync?: QresyncParams } {
  if (a.type !== 'list') throw new ArgError('Invalid arguments.');
  const out: { condstore: boolean; qresync?: QresyncParams } = { condstore: false };
  for (let i = 0; i < a.items.length; i++) {
    const w = (astring(a.items[i]) ?? '').toUpperCase();
    if (w === 'CONDSTORE') { out.condstore = true; continue; }
    // Dovecot's wording for an unknown SELECT parameter
    if (w !== 'QRESYNC') throw new ArgError('Unknown FETCH modifier.');
    if (!qresyncOn) throw new ArgError('QRESYNC not enabled.');
    const p = a.items[++i];
    const bad = () => new ArgError('Invalid QRESYNC parameters.');
    if (!p || p.type !== 'list' || p.items.length < 2 || p.items.length > 4) throw bad();
    const [v, ms, known, match] = p.items;
    if (v.type !== 'atom' || !/^\d{1,10}$/.test(v.value) || Number(v.value) === 0 || Number(v.value) > 0xffffffff) throw bad();
    let modseq: number;
    try { modseq = modseqArg(ms, ''); } catch { throw bad(); }
    let knownSet: SequenceSet | undefined;
    if (known) {
      try { knownSet = seqSet(known, true); } catch { throw bad(); }
      if (knownSet.type !== 'set') throw bad();
    }
    // the sequence match data only saves work when the known UIDs are sparse; Dovecot's answer does not depend on it
    if (match && (match.type !== 'list' || match.items.length !== 2)) throw bad();
    out.qresync = { uidValidity: Number(v.value), modseq, known: knownSet };
  }
  return out;
}

/** The LIST line IMAP4rev2 sends at SELECT (RFC 9051 §6.3.2): the mailbox name as given, accurate attributes. */
async function selectedListLine(s: CommandContext['session'], name: string, given: ImapArg | undefined): Promise<ImapValue[]> {
  const info = (await s.store!.listInfo()).find((f) => f.name === name);
  const flags = [info?.hasChildren ? '\\HasChildren' : '\\HasNoChildren', ...(info?.specialUse ? [info.specialUse] : [])];
  return [atom('LIST'), list(flags.map(atom)), str(info?.sep ?? s.store!.separatorOf(name)), str((given ? astring(given) : null) ?? name)];
}

async function select(ctx: CommandContext, readOnly: boolean): Promise<void> {
  const s = ctx.session;
  let name = '';
  try {
    name = mailboxArg(ctx.args[0], ctx.session);
    if (s.selected) {
      s.selected.release();
      s.selected = null;
      s.state = 'authenticated';
      await s.send({ kind: 'status', status: 'OK', code: { name: 'CLOSED' }, text: 'Previous mailbox closed.' });
    }
    const params = ctx.args[1] ? selectParams(ctx.args[1], s.qresync) : { condstore: false };
    if (params.condstore) await s.enableCondstore();
    const shared = await s.store!.openShared(name);
    const folder = shared.folder;
    const sel = new Selected(name, folder, readOnly, shared.release);
    sel.rev2 = s.rev2;
    try { await sel.open(); } catch (e) { shared.release(); throw e; }
    sel.keywordsAnnounced = [...folder.keywordOrder];
    await sendFlagLines(s, sel.keywordsAnnounced, readOnly);
    await s.untagged([num(sel.uids.length), atom('EXISTS')]);
    // RFC 9051 §6.3.2: no RECENT and no [UNSEEN] in IMAP4rev2, a LIST of the mailbox instead
    if (!s.rev2) await s.untagged([num(sel.recent.size), atom('RECENT')]);
    else await s.untagged(await selectedListLine(s, name, ctx.args[0]));
    const firstUnseen = s.rev2 ? -1 : folder.firstWithout('\\Seen');
    if (firstUnseen >= 0) await s.send({ kind: 'status', status: 'OK', code: { name: 'UNSEEN', args: [num(firstUnseen + 1)] }, text: 'First unseen.' });
    await s.send({ kind: 'status', status: 'OK', code: { name: 'UIDVALIDITY', args: [num(folder.uidValidity)] }, text: 'UIDs valid' });
    await s.send({ kind: 'status', status: 'OK', code: { name: 'UIDNEXT', args: [num(folder.uidNext)] }, text: 'Predicted next UID' });
    s.selected = sel;
    s.notifyUidnext = folder.uidNext; // NOTIFY's MessageNew FETCH starts here (Dovecot's cmd-select.c)
    s.state = 'selected';
    if (s.condstore) await folder.trackModseqs();
    if (folder.modseqTracked) {
      s.lastFullModseq = folder.highestModseq;
      await s.send({ kind: 'status', status: 'OK', code: { name: 'HIGHESTMODSEQ', args: [num(folder.highestModseq)] }, text: 'Highest' });
    }
    const q = params.qresync;
    if (q && q.uidValidity === folder.uidValidity) {
      // RFC 7162 §3.2.5.1: what the client missed — VANISHED (EARLIER), then the changed messages' flags
      const ranges = q.known?.type === 'set' ? q.known.ranges : [{ from: 1, to: STAR }];
      const gone = vanishedIn(sel, ranges, q.modseq);
      if (gone.length) await s.untagged([atom('VANISHED'), list([atom('EARLIER')]), atom(uidSetText(gone))]);
      const top = folder.uidNext - 1;
      const rs = normalizeSequenceSet(ranges, top);
      for (let i = 0; i < sel.uids.length; i++) {
        const m = folder.message(sel.uids[i]);
        if (!m || m.modseq <= q.modseq || !rs.some((r) => m.uid >= r.from && m.uid <= r.to)) continue;
        s.noteModseq(m.modseq);
        // a keyword set meanwhile by another session (or found on a file it renamed): FLAGS first
        const flags = await announcedFlags(s, sel, m);
        await s.untagged([num(i + 1), atom('FETCH'), list([atom('UID'), num(m.uid), atom('FLAGS'), list(flags.map(atom)), atom('MODSEQ'), list([num(m.modseq)])])]);
      }
    }
    await ctx.ok(readOnly ? 'Examine completed' : 'Select completed', { name: readOnly ? 'READ-ONLY' : 'READ-WRITE' });
  } catch (e) {
    s.selected?.release();
    s.selected = null;
    s.state = 'authenticated';
    await replyError(ctx, e, name);
  }
}

async function expungeDeleted(ctx: CommandContext, uids: Set<number> | null): Promise<number[]> {
  const sel = ctx.session.selected!;
  const victims = sel.folder.messages.filter((m) => m.flags.has('\\Deleted') && (!uids || uids.has(m.uid)));
  return victims.length ? sel.folder.expunge(victims) : [];
}

export const selectCommands: Record<string, Command> = {
  SELECT: { states: AUTHED, run: (ctx) => select(ctx, false) },
  EXAMINE: { states: AUTHED, run: (ctx) => select(ctx, true) },
  CLOSE: {
    states: SELECTED,
    async run(ctx) {
      const s = ctx.session;
      try { if (!s.selected!.readOnly) await expungeDeleted(ctx, null); } catch (e) { s.log.error(`CLOSE: expunge failed: ${(e as Error).message}`); }
      s.selected!.release();
      s.selected = null;
      s.state = 'authenticated';
      await ctx.ok('Close completed');
    },
  },
  UNSELECT: {
    states: SELECTED,
    async run(ctx) {
      ctx.session.selected!.release();
      ctx.session.selected = null;
      ctx.session.state = 'authenticated';
      await ctx.ok('Unselect completed');
    },
  },
  EXPUNGE: {
    states: SELECTED,
    async run(ctx) {
      if (ctx.session.selected!.readOnly) { await ctx.no('Mailbox is read-only', { name: 'READ-ONLY' }); return; }
      try {
        await expungeDeleted(ctx, null);
        await ctx.ok('Expunge completed', await ctx.session.sendUpdates(true, undefined, true));
      } catch (e) { await replyError(ctx, e); }
    },
  },
  'UID EXPUNGE': {
    states: SELECTED,
    async run(ctx) {
      const sel = ctx.session.selected!;
      if (sel.readOnly) { await ctx.no('Mailbox is read-only', { name: 'READ-ONLY' }); return; }
      try {
        const set = seqSet(ctx.args[0], true);
        await expungeDeleted(ctx, new Set(sel.resolve(set, true).map((x) => x.m.uid)));
        await ctx.ok('Expunge completed', await ctx.session.sendUpdates(true, undefined, true));
      } catch (e) { await replyError(ctx, e); }
    },
  },
};
