/**
 * THREAD (RFC 5256 §4): ORDEREDSUBJECT, REFERENCES and Dovecot's REFS, with
 * Dovecot's choices where the RFC leaves room or Dovecot differs from it:
 * message IDs read as Dovecot's message_id_get_next() reads them; a
 * duplicate Message-ID keeps the first message and makes the later one a
 * thread of its own; a conflicting parent keeps the first link, a link that
 * would make a loop is ignored; children and roots sort by sent date (else
 * INTERNALDATE), then UID; a root without a message and with one child is
 * replaced by the child. REFS skips the subject merge and orders threads
 * by their newest message. Pure functions over SortMessage.
 */
import { baseSubject } from './base-subject.js';
import { sortMessages, sortValue, type SortMessage } from './sort.js';

export type ThreadAlgorithm = 'ORDEREDSUBJECT' | 'REFERENCES' | 'REFS';
export const THREAD_ALGORITHMS: ThreadAlgorithm[] = ['REFERENCES', 'REFS', 'ORDEREDSUBJECT'];

/** A thread tree node: `n` is the message's number (seq or UID), 0 for a placeholder. */
export interface ThreadNode { n: number; children: ThreadNode[] }

const LWSP = /[ \t\r\n]/g;
const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\uffff]/;

/** The quoted-string or dot-atom at `i` (whitespace skipped): [text, end] or null. */
function word(s: string, i: number, quotedOk: boolean): [string, number] | null {
  while (s[i] === ' ' || s[i] === '\t' || s[i] === '\r' || s[i] === '\n') i++;
  if (quotedOk && s[i] === '"') {
    let out = '';
    for (i++; i < s.length && s[i] !== '"'; i++) out += s[i] === '\\' ? s[++i] ?? '' : s[i];
    return i < s.length ? [out, i + 1] : null;
  }
  let out = '';
  for (;;) {
    const st = i;
    while (i < s.length && ATEXT.test(s[i])) i++;
    if (i === st) return null;
    out += s.slice(st, i);
    if (s[i] !== '.') return [out, i];
    out += '.';
    i++;
  }
}

/** Every valid <id@host> in a Message-ID/References/In-Reply-To value, brackets off, as Dovecot reads them. */
export function messageIds(v: string | null, max = Infinity): string[] {
  const out: string[] = [];
  if (v === null) return out;
  let pos = 0;
  while (out.length < max) {
    const lt = v.indexOf('<', pos);
    if (lt < 0) break;
    const start = lt + 1;
    let p = start;
    let at = false;
    for (; p < v.length; p++) {
      const c = v.charCodeAt(p);
      if (c >= 0x41) continue;
      if (c === 0x40) at = true;
      if (c === 0x3e || c === 0x22 || c === 0x28 || c === 0x5b) break;
    }
    if (p >= v.length) break;
    if (v[p] === '>') {
      pos = p + 1;
      if (at) out.push(v.slice(start, p).replace(LWSP, ''));
      continue;
    }
    // the slow way: quoted local part or dot-atoms around '@'
    pos = start;
    const left = word(v, start, true);
    if (!left || v[left[1]] !== '@') continue;
    const right = word(v, left[1] + 1, false);
    if (!right || v[right[1]] !== '>') continue;
    out.push(`${left[0]}@${right[0]}`);
    pos = right[1] + 1;
  }
  return out;
}

interface Link { uid: number; m: SortMessage | null; parent: number }
interface Root { idx: number; uid: number; date: number; dummy: boolean; ignore: boolean; rootNo: number; parentRoot: number; rf: boolean }

/**
 * Build Dovecot's message-ID link graph (RFC 5256 §4 step 1) over messages
 * in UID order. Node numbers follow Dovecot's string map: every ID in the
 * order it first appears in the whole mailbox (`universe`, UID order;
 * Message-ID, then References or In-Reply-To), which decides the order of
 * placeholder roots that tie in REFS.
 */
function linkMessages(msgs: SortMessage[], universe: SortMessage[]): { nodes: Link[] } {
  const nodes: Link[] = [{ uid: 0, m: null, parent: 0 }];
  const byId = new Map<string, number>();
  const idxOf = (id: string): number => {
    let i = byId.get(id);
    if (i === undefined) { i = nodes.length; nodes.push({ uid: 0, m: null, parent: 0 }); byId.set(id, i); }
    return i;
  };
  const ancestorOf = (node: number, anc: number): boolean => {
    for (let n = node; ; n = nodes[n].parent) { if (n === anc) return true; if (nodes[n].parent === 0) return false; }
  };
  const link = (parent: number, child: number): void => {
    if (ancestorOf(parent, child)) return; // a loop (or itself): ignored
    if (nodes[child].parent === parent) return;
    if (nodes[child].parent === 0) nodes[child].parent = parent; // else the first parent stays
  };
  const ids = (m: SortMessage, field: 'messageId' | 'references' | 'inReplyTo', max?: number): string[] => {
    const memo = (m.memo ??= new Map());
    let v = memo.get(field) as string[] | undefined;
    if (!v) memo.set(field, (v = messageIds(m.h[field], max)));
    return v;
  };
  for (const m of universe) {
    for (const id of ids(m, 'messageId', 1)) idxOf(id);
    const refs = ids(m, 'references');
    for (const id of refs.length ? refs : ids(m, 'inReplyTo', 1)) idxOf(id);
  }
  for (const m of msgs) {
    const [mid] = ids(m, 'messageId', 1);
    let idx: number;
    if (mid !== undefined && nodes[idxOf(mid)].uid === 0) idx = idxOf(mid);
    else { idx = nodes.length; nodes.push({ uid: 0, m: null, parent: 0 }); } // no or duplicate Message-ID: a node of its own
    nodes[idx].uid = m.uid;
    nodes[idx].m = m;
    let refs = ids(m, 'references');
    if (!refs.length) refs = ids(m, 'inReplyTo', 1);
    let parent = 0;
    for (const r of refs) {
      const i = idxOf(r);
      if (parent) link(parent, i);
      parent = i;
    }
    if (nodes[idx].parent !== parent && nodes[idx].parent !== 0) nodes[idx].parent = 0;
    if (parent) link(parent, idx);
  }
  return { nodes };
}

/** RFC 5256 §4 REFERENCES / Dovecot REFS over the (searched) messages. */
function threadByReferences(msgs: SortMessage[], refs2: boolean, universe: SortMessage[]): ThreadNode[] {
  const byUid = (l: SortMessage[]) => [...l].sort((a, b) => a.uid - b.uid);
  const { nodes } = linkMessages(byUid(msgs), byUid(universe));
  const children = new Map<number, number[]>();
  const kids = (i: number): number[] => children.get(i) ?? [];
  const addChild = (p: number, c: number) => { const l = children.get(p); if (l) l.push(c); else children.set(p, [c]); };
  const roots: Root[] = [];
  // (2)+(3): roots, and every message under its nearest real ancestor (or the top placeholder)
  for (let i = 1; i < nodes.length; i++) {
    const n = nodes[i];
    if (n.parent === 0) { roots.push({ idx: i, uid: n.uid, date: 0, dummy: n.uid === 0, ignore: false, rootNo: 0, parentRoot: 0, rf: false }); continue; }
    if (n.uid === 0) continue;
    let p = n.parent;
    while (nodes[p].uid === 0 && nodes[p].parent !== 0) p = nodes[p].parent;
    addChild(p, i);
  }
  const dateCache = new Map<number, number>();
  const dateOf = (i: number): number => {
    let d = dateCache.get(i);
    if (d === undefined) dateCache.set(i, (d = sortValue(nodes[i].m!, 'DATE') as number));
    return d;
  };
  const byDate = (a: { date: number; uid: number }, b: { date: number; uid: number }) => a.date - b.date || a.uid - b.uid;
  const sortedKids = (i: number): { idx: number; uid: number; date: number }[] => {
    const l = kids(i).map((c) => ({ idx: c, uid: nodes[c].uid, date: 0 }));
    if (l.length < 2) return l;
    for (const c of l) c.date = dateOf(c.idx);
    return l.sort(byDate);
  };
  const sortRoots = () => {
    for (const r of roots) {
      if (r.ignore) continue;
      if (r.dummy) {
        const k = sortedKids(r.idx);
        if (!k.length) { r.ignore = true; continue; }
        if (k.length === 1) { r.idx = k[0].idx; r.uid = k[0].uid; r.date = dateOf(k[0].idx); r.dummy = false; } else { r.uid = k[0].uid; r.date = k[0].date; }
      } else r.date = dateOf(r.idx);
    }
    roots.sort(byDate);
  };

  if (refs2) {
    // REFS: a thread's date is its newest message's
    for (const r of roots.slice(1)) if (r.dummy && !kids(r.idx).length) r.ignore = true;
    const rootOf = new Map(roots.map((r) => [r.idx, r]));
    for (let i = 1; i < nodes.length; i++) {
      if (nodes[i].uid === 0) continue;
      let top = i;
      while (nodes[top].parent !== 0) top = nodes[top].parent;
      const r = rootOf.get(top)!;
      r.date = Math.max(r.date, dateOf(i));
    }
    roots.sort(byDate);
  } else {
    sortRoots();
    // (5) gather roots by base subject
    const table = new Map<string, Root>();
    roots.forEach((r, i) => {
      r.rootNo = i + 1;
      let idx: number;
      if (!r.dummy) idx = r.idx;
      else if (!r.ignore) idx = sortedKids(r.idx)[0].idx;
      else return;
      const raw = nodes[idx].m!.h.subject;
      if (raw === null) return;
      const { subject, replyOrForward } = baseSubject(raw);
      if (!subject) return;
      const held = table.get(subject);
      if (!held) table.set(subject, r);
      else if (!held.dummy && (r.dummy || (held.rf && !replyOrForward))) { held.parentRoot = r.rootNo; table.set(subject, r); } else r.parentRoot = held.rootNo;
      r.rf = replyOrForward;
    });
    // (5.C) merge threads of one subject
    let changed = false;
    let nextIdx = nodes.length + 1;
    const count = roots.length;
    for (let i = 0; i < count; i++) {
      const cur = roots[i];
      if (!cur.parentRoot || cur.ignore) continue;
      changed = true;
      let top = cur;
      do top = roots[top.parentRoot - 1]; while (top.parentRoot !== 0);
      if (cur.dummy) {
        for (const c of kids(cur.idx)) addChild(top.idx, c);
        children.delete(cur.idx);
        cur.ignore = true;
      } else if (top.dummy || (cur.rf && !top.rf)) {
        addChild(top.idx, cur.idx);
        cur.ignore = true;
      } else {
        const d: Root = { idx: nextIdx++, uid: 0, date: 0, dummy: true, ignore: false, rootNo: roots.length + 1, parentRoot: 0, rf: false };
        addChild(d.idx, top.idx);
        addChild(d.idx, cur.idx);
        top.parentRoot = d.rootNo;
        top.ignore = true;
        cur.ignore = true;
        roots.push(d);
      }
    }
    if (changed) sortRoots();
  }

  const num = (i: number): number => nodes[i]?.m?.seq ?? 0;
  const tree = (i: number): ThreadNode => ({ n: num(i), children: sortedKids(i).map((k) => tree(k.idx)) });
  const out: ThreadNode[] = [];
  for (const r of roots) {
    if (r.ignore) continue;
    if (r.dummy) {
      const k = sortedKids(r.idx);
      if (k.length) out.push({ n: 0, children: k.map((c) => tree(c.idx)) });
    } else out.push(tree(r.idx));
  }
  return out;
}

/** ORDEREDSUBJECT: runs of one base subject in (SUBJECT, DATE) order, threads ordered by their first message's date. */
function threadBySubject(msgs: SortMessage[]): ThreadNode[] {
  const threads: { date: number; first: number; msgs: SortMessage[] }[] = [];
  let prev: string | null = null;
  let cur: SortMessage[] | null = null;
  for (const m of sortMessages(msgs, [{ key: 'SUBJECT', reverse: false }, { key: 'DATE', reverse: false }])) {
    const base = sortValue(m, 'SUBJECT') as string;
    if (base !== (prev ?? '')) cur = null;
    prev = base;
    if (!cur) { cur = []; threads.push({ date: sortValue(m, 'DATE') as number, first: m.seq, msgs: cur }); }
    cur.push(m);
  }
  threads.sort((a, b) => a.date - b.date || a.first - b.first);
  return threads.map((t) => ({ n: t.msgs[0].seq, children: t.msgs.slice(1).map((m) => ({ n: m.seq, children: [] })) }));
}

/**
 * Thread the messages; node numbers are their `seq` (the caller passes UIDs
 * there for UID THREAD). `universe` is every message of the mailbox when
 * `msgs` is a search result (only the order of IDs is taken from it).
 */
export function threadMessages(msgs: SortMessage[], algorithm: ThreadAlgorithm, universe: SortMessage[] = msgs): ThreadNode[] {
  return algorithm === 'ORDEREDSUBJECT' ? threadBySubject(msgs) : threadByReferences(msgs, algorithm === 'REFS', universe);
}
