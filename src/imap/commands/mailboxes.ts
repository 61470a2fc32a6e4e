/**
 * Mailbox-level commands (RFC 3501 §6.3; RFC 5258 LIST-EXTENDED; RFC 5819
 * LIST-STATUS; RFC 6154 special-use; RFC 3348 CHILDREN; RFC 8438
 * STATUS=SIZE): LIST, LSUB, CREATE, DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE, STATUS — on the store's Dovecot-compatible
 * folder operations, in Dovecot's LIST order, each name with its
 * namespace's separator (the store knows the namespaces; a namespace with
 * `list = no` shows only to patterns that begin with its prefix).
 */
import { atom, astr, list, num, str, type ImapValue } from '../wire/encoder.js';
import { AUTHED, type Command, type CommandContext } from './types.js';
import { ArgError, astring, mailboxArg, needAstring } from './args.js';
import type { ImapArg } from '../wire/parser.js';
import { replyError } from './errors.js';
import { imapPatterns } from '../../util/wildcard.js';
import type { FolderInfo } from '../../mailstore/store.js';

/** Dovecot's STATUS item order. */
const STATUS_ORDER = ['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'HIGHESTMODSEQ', 'SIZE'];


interface ListOptions {
  /** LIST-EXTENDED syntax used: \NonExistent instead of \Noselect, flags only as asked. */
  ext: boolean;
  selSubscribed: boolean;
  selRecursive: boolean;
  selSpecialUse: boolean;
  retSubscribed: boolean;
  retChildren: boolean;
  retSpecialUse: boolean;
  /** LIST-STATUS items (RFC 5819), null when not asked. */
  status: string[] | null;
}

/** Atoms of an option list, Dovecot's BAD when something else is in it. */
function optionAtoms(a: ImapArg): string[] {
  if (a.type !== 'list') throw new ArgError('Invalid arguments.');
  return a.items.map((i) => {
    if (i.type !== 'atom') throw new ArgError('List options contains non-atoms.');
    return i.value.toUpperCase();
  });
}

/** LIST [(selection)] ref (pattern | (patterns)) [RETURN (options)] as Dovecot 2.3 parses it (RFC 5258, RFC 5819, RFC 6154). */
function parseList(args: ImapArg[]): { ref: string; patterns: string[]; o: ListOptions } {
  const o: ListOptions = { ext: false, selSubscribed: false, selRecursive: false, selSpecialUse: false, retSubscribed: false, retChildren: false, retSpecialUse: false, status: null };
  let i = 0;
  if (args[0]?.type === 'list') {
    o.ext = true;
    for (const opt of optionAtoms(args[0])) {
      if (opt === 'SUBSCRIBED') { o.selSubscribed = true; o.retSubscribed = true; } else if (opt === 'RECURSIVEMATCH') o.selRecursive = true;
      else if (opt === 'SPECIAL-USE') o.selSpecialUse = true;
      else if (opt !== 'REMOTE') throw new ArgError('Unknown select options');
    }
    if (o.selRecursive && !o.selSubscribed && !o.selSpecialUse) throw new ArgError('RECURSIVEMATCH must not be the only selection.');
    i++;
  }
  const ref = astring(args[i++]);
  if (ref === null) throw new ArgError('Invalid reference.');
  const p = args[i++];
  let patterns: string[];
  if (p?.type === 'list') {
    o.ext = true;
    patterns = p.items.map((x) => { const v = astring(x); if (v === null) throw new ArgError('Invalid pattern.'); return v; });
  } else {
    const v = astring(p);
    if (v === null) throw new ArgError('Invalid pattern.');
    patterns = [v];
  }
  if (i < args.length) {
    if (astring(args[i])?.toUpperCase() !== 'RETURN' || args[i + 1]?.type !== 'list' || i + 2 < args.length) throw new ArgError('Extra arguments.');
    o.ext = true;
    const items = (args[i + 1] as Extract<ImapArg, { type: 'list' }>).items;
    for (let k = 0; k < items.length; k++) {
      const it = items[k];
      if (it.type !== 'atom') throw new ArgError('List options contains non-atoms.');
      const opt = it.value.toUpperCase();
      if (opt === 'SUBSCRIBED') o.retSubscribed = true;
      else if (opt === 'CHILDREN') o.retChildren = true;
      else if (opt === 'SPECIAL-USE') o.retSpecialUse = true;
      else if (opt === 'STATUS' && items[k + 1]?.type === 'list') o.status = statusItems(items[++k]);
      else throw new ArgError('Unknown return options');
    }
  }
  if (!o.ext) o.retChildren = true;
  return { ref, patterns, o };
}

interface ListLine { name: string; sep: string; flags: string[]; childInfo: boolean; status: boolean }

/**
 * LIST and LSUB with LIST-EXTENDED (RFC 5258): selection SUBSCRIBED
 * (subscription order, \NonExistent for a subscribed name without a
 * mailbox), RECURSIVEMATCH (a parent the pattern matches is listed with
 * CHILDINFO when only a child is subscribed; LSUB does this for `%` and
 * shows the parent \Noselect), SPECIAL-USE, REMOTE (no remote mailboxes);
 * return options CHILDREN, SUBSCRIBED, SPECIAL-USE, STATUS (RFC 5819: a
 * STATUS line after each selectable mailbox). Flags in Dovecot's order.
 */
async function listCmd(ctx: CommandContext, lsub: boolean): Promise<void> {
  const s = ctx.session;
  try {
    const parsed = parseList(ctx.args);
    const { o } = parsed;
    // RFC 6855: with UTF8=ACCEPT the reference and patterns are UTF-8 like the names they match
    const ref = s.mailboxIn(parsed.ref);
    const patterns = parsed.patterns.map((p) => s.mailboxIn(p));
    if (lsub) { o.selSubscribed = true; o.ext = false; o.retChildren = false; }
    const word = lsub ? 'LSUB' : 'LIST';
    const SEP = s.store!.listSep;
    if (!lsub && !o.ext && patterns[0] === '') {
      await s.untagged([atom('LIST'), list([atom('\\Noselect')]), str(SEP), str('')]);
      await ctx.ok('List completed');
      return;
    }
    // linear-time matching: a client's pattern never backtracks against a long name
    const full = patterns.filter((p) => p !== '').map((p) => ref + p);
    const glob = imapPatterns(full, SEP);
    const matches = (name: string) => glob.test(name);
    // a list = no namespace's folders show only when a pattern names its prefix
    const asked = (f: Pick<FolderInfo, 'nsListed' | 'nsPrefix'>) => f.nsListed || full.some((p) => p.startsWith(f.nsPrefix));
    const showSpecial = lsub || !o.ext || o.retSpecialUse || o.selSpecialUse;
    const infos = (await s.store!.listInfo()).filter(asked);
    const byName = new Map(infos.map((f) => [f.name, f]));
    const subs = o.retSubscribed || o.selSubscribed ? (await s.store!.subscriptions()).filter((n) => asked(s.store!.listingOf(n))) : [];
    const sepOf = (name: string) => s.store!.separatorOf(name);
    const subscribed = new Set(subs);
    /** `parentOnly`: listed only for a subscribed child (RECURSIVEMATCH / LSUB %); `childInfo`: a subscribed child exists. */
    const lineFor = (name: string, parentOnly: boolean, childInfo: boolean): ListLine => {
      const f: Partial<FolderInfo> & { exists: boolean; noselect: boolean; hasChildren: boolean } = byName.get(name) ?? { name, exists: false, noselect: false, hasChildren: false };
      const flags: string[] = [];
      if (o.retSubscribed && !lsub && subscribed.has(name)) flags.push('\\Subscribed');
      if (lsub && parentOnly) flags.push('\\Noselect');
      else if (!f.exists && !lsub) flags.push(f.noselect || !o.ext ? '\\Noselect' : '\\NonExistent');
      if (o.retChildren) flags.push(f.hasChildren ? '\\HasChildren' : '\\HasNoChildren');
      if (showSpecial && f.specialUse && f.exists) flags.push(f.specialUse);
      return { name, sep: f.sep ?? sepOf(name), flags, childInfo: childInfo && !lsub, status: f.exists && !f.noselect && !parentOnly };
    };
    const out: ListLine[] = [];
    if (o.selSubscribed) {
      const seen = new Set<string>();
      // LSUB shows parents only for patterns ending in %, LIST only with RECURSIVEMATCH
      const parents = lsub ? patterns.some((p) => p.endsWith('%')) : o.selRecursive;
      for (const name of subs) {
        if (o.selSpecialUse && !(byName.get(name)?.exists && byName.get(name)?.specialUse)) continue;
        if (matches(name)) {
          // RECURSIVEMATCH marks a listed name that has subscribed children too (Dovecot)
          if (!seen.has(name)) { seen.add(name); out.push(lineFor(name, false, o.selRecursive && subs.some((x) => x.startsWith(name + SEP)))); }
          continue;
        }
        if (!parents) continue;
        const levels = name.split(SEP);
        for (let n = 1; n < levels.length; n++) {
          const parent = levels.slice(0, n).join(SEP);
          if (!matches(parent)) continue;
          if (!seen.has(parent)) { seen.add(parent); out.push(lineFor(parent, !subscribed.has(parent), true)); }
          break;
        }
      }
    } else {
      for (const f of infos) {
        if (!matches(f.name)) continue;
        if (o.selSpecialUse && !(f.exists && f.specialUse)) continue;
        // the parent of a not-yet-created auto mailbox: listed (\\NonExistent, never \\Subscribed) only when its child isn't
        if (f.autoParent) {
          if (infos.some((c) => c.name.startsWith(f.name + SEP) && !c.autoParent && matches(c.name))) continue;
          out.push({ ...lineFor(f.name, false, false), flags: lineFor(f.name, false, false).flags.filter((x) => x !== '\\Subscribed') });
          continue;
        }
        out.push(lineFor(f.name, false, false));
      }
    }
    for (const l of out) {
      const v: ImapValue[] = [atom(word), list(l.flags.map(atom)), str(l.sep), astr(s.mailboxOut(l.name))];
      if (l.childInfo) v.push(list([atom('CHILDINFO'), list([str('SUBSCRIBED')])]));
      await s.untagged(v);
      if (o.status && l.status) await s.untagged(await statusResponse(ctx, l.name, o.status));
    }
    await ctx.ok(lsub ? 'Lsub completed' : 'List completed');
  } catch (e) { await replyError(ctx, e); }
}

/** A STATUS item list (STATUS, LIST RETURN (STATUS …)) with Dovecot's BAD texts. */
function statusItems(a: ImapArg | undefined, rev2 = false): string[] {
  // RFC 9051 adds DELETED (Dovecot 2.3 knows no IMAP4rev2: only after ENABLE IMAP4rev2)
  const known = rev2 ? [...STATUS_ORDER, 'DELETED'] : STATUS_ORDER;
  if (!a || a.type !== 'list') throw new ArgError('Invalid arguments.');
  if (!a.items.length) throw new ArgError('Empty status list.');
  const want = new Set<string>();
  for (const it of a.items) {
    const k = needAstring(it).toUpperCase();
    if (!known.includes(k)) throw new ArgError(`Invalid status item ${k}`);
    want.add(k);
  }
  return known.filter((k) => want.has(k));
}

/** The untagged STATUS response; Dovecot answers in its own fixed order, whatever order was asked. */
async function statusResponse(ctx: CommandContext, name: string, items: string[]): Promise<ImapValue[]> {
  const modseq = items.includes('HIGHESTMODSEQ');
  // RFC 7162 §3.1.1: asking for HIGHESTMODSEQ enables CONDSTORE
  if (modseq) await ctx.session.enableCondstore();
  const st = await ctx.session.store!.status(name, modseq);
  const values: Record<string, number> = { MESSAGES: st.messages, RECENT: st.recent, UIDNEXT: st.uidnext, UIDVALIDITY: st.uidvalidity, UNSEEN: st.unseen, DELETED: st.deleted ?? 0, HIGHESTMODSEQ: st.highestModseq, SIZE: st.vsize };
  return [atom('STATUS'), astr(ctx.session.mailboxOut(name)), list(items.flatMap((k) => [atom(k), num(values[k])]))];
}

export const mailboxCommands: Record<string, Command> = {
  LIST: { states: AUTHED, run: (ctx) => listCmd(ctx, false) },
  LSUB: { states: AUTHED, run: (ctx) => listCmd(ctx, true) },
  CREATE: {
    states: AUTHED,
    async run(ctx) {
      let name = '';
      try {
        name = mailboxArg(ctx.args[0], ctx.session);
        // a trailing separator says the mailbox will have children (RFC 3501 CREATE): LAYOUT=fs makes just a directory
        const directory = name.endsWith(ctx.session.store!.separatorOf(name));
        if (directory) name = name.slice(0, -1);
        await ctx.session.store!.create(name, directory);
        await ctx.ok('Create completed');
      } catch (e) { await replyError(ctx, e, name); }
    },
  },
  DELETE: {
    states: AUTHED,
    async run(ctx) {
      const s = ctx.session;
      let name = '';
      let closed = false;
      try {
        name = mailboxArg(ctx.args[0], s);
        // Dovecot's cmd_delete refuses INBOX first, in its own words; the selected mailbox is
        // closed, deleted, and after the tagged reply, OK or NO, the client is disconnected
        if (name.toUpperCase() === 'INBOX') { await ctx.no('INBOX can\'t be deleted.'); return; }
        if (s.selected?.name === name) {
          s.selected.release();
          s.selected = null;
          s.state = 'authenticated';
          closed = true;
        }
        await s.store!.delete(name);
        await ctx.ok('Delete completed');
      } catch (e) { await replyError(ctx, e, name); }
      if (closed) await s.bye('Selected mailbox was deleted, have to disconnect.');
    },
  },
  RENAME: {
    states: AUTHED,
    async run(ctx) {
      let from = '';
      try {
        from = mailboxArg(ctx.args[0], ctx.session);
        const to = mailboxArg(ctx.args[1], ctx.session);
        const store = ctx.session.store!;
        // cmd-rename.c: box -> box/child within a namespace is refused before the storage is asked
        if (store.sameNamespace(from, to) && to.startsWith(from + store.separatorOf(from))) { await ctx.no("Can't rename mailbox under its own child"); return; }
        await store.rename(from, to);
        await ctx.ok('Rename completed');
      } catch (e) { await replyError(ctx, e, from); }
    },
  },
  SUBSCRIBE: {
    states: AUTHED,
    async run(ctx) {
      let name = '';
      try { name = mailboxArg(ctx.args[0], ctx.session); await ctx.session.store!.subscribe(name, true); await ctx.ok('Subscribe completed'); } catch (e) { await replyError(ctx, e, name); }
    },
  },
  UNSUBSCRIBE: {
    states: AUTHED,
    async run(ctx) {
      let name = '';
      try { name = mailboxArg(ctx.args[0], ctx.session); await ctx.session.store!.subscribe(name, false); await ctx.ok('Unsubscribe completed'); } catch (e) { await replyError(ctx, e, name); }
    },
  },
  STATUS: {
    states: AUTHED,
    async run(ctx) {
      let name = '';
      try {
        name = mailboxArg(ctx.args[0], ctx.session);
        const items = statusItems(ctx.args[1], ctx.session.rev2);
        await ctx.session.untagged(await statusResponse(ctx, name, items));
        if (ctx.session.selected?.name === name) await ctx.ok('Status on selected mailbox completed', { name: 'CLIENTBUG' });
        else await ctx.ok('Status completed');
      } catch (e) { await replyError(ctx, e, name); }
    },
  },
};
