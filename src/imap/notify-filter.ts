/**
 * NOTIFY (RFC 5465) arguments as Dovecot 2.3's cmd-notify.c reads them:
 * `NOTIFY NONE` or `NOTIFY SET [STATUS] (filter events)...`, with its
 * quirks kept (anything after NONE, and after an event list, is ignored;
 * `NOTIFY SET` alone is OK), its BAD texts, the events it refuses
 * (`NO [BADEVENT ...]`: AnnotationChange and the METADATA ones) and its
 * limit of 100 mailbox names in one filter (`NO [NOTIFICATIONOVERFLOW]`).
 * INBOXES is treated as PERSONAL, as in Dovecot ("we can't currently know
 * inboxes"). Pure parsing: no storage is touched here.
 */
import type { ImapArg } from './wire/parser.js';
import { astring, inboxCased } from './commands/args.js';

export const NOTIFY_EVENTS = ['MessageNew', 'MessageExpunge', 'FlagChange', 'AnnotationChange', 'MailboxName', 'SubscriptionChange', 'MailboxMetadataChange', 'ServerMetadataChange'] as const;
export type NotifyEvent = typeof NOTIFY_EVENTS[number];
/** Dovecot's UNSUPPORTED_EVENTS: accepted by the parser, refused with NO [BADEVENT …]. */
const UNSUPPORTED: ReadonlySet<NotifyEvent> = new Set(['AnnotationChange', 'MailboxMetadataChange', 'ServerMetadataChange']);
/** Dovecot's IMAP_NOTIFY_MAX_NAMES_PER_NS: more names in one filter is NOTIFICATIONOVERFLOW. */
export const NOTIFY_MAX_NAMES = 100;
const SEP = '.';

/** Mailboxes one filter covers: `subtree` with '' is every mailbox (PERSONAL/INBOXES). */
export interface NotifyGroup { type: 'subtree' | 'mailboxes' | 'subscribed'; names: string[]; events: Set<NotifyEvent> }

export interface NotifySpec {
  /** SET STATUS: a STATUS for every matched mailbox before the tagged OK. */
  status: boolean;
  /** A SELECTED or SELECTED-DELAYED filter was given (events may be none). */
  selectedSet: boolean;
  /** SELECTED (not -DELAYED): expunges are sent at the end of every command. */
  selectedImmediate: boolean;
  selectedEvents: Set<NotifyEvent>;
  /** MessageNew's fetch-att list for the selected mailbox, unparsed (FETCH validates it). */
  fetchAtt: ImapArg | null;
  groups: NotifyGroup[];
  /** Every event named anywhere (STATUS adds HIGHESTMODSEQ when FlagChange is among them). */
  used: Set<NotifyEvent>;
}

export type NotifyParse = { ok: true; spec: NotifySpec } | { ok: false; bad: string } | { ok: false; no: string; code: string; args?: string };

class Bad extends Error {}

function atomOf(a: ImapArg | undefined): string | null {
  return a && (a.type === 'atom' || a.type === 'nil') ? a.value : null;
}

function eventOf(a: ImapArg | undefined): NotifyEvent {
  const s = atomOf(a)?.toLowerCase();
  const e = NOTIFY_EVENTS.find((n) => n.toLowerCase() === s);
  if (!e) throw new Bad('Invalid arguments.');
  return e;
}

/** The `SELECTED`/`SELECTED-DELAYED` events (cmd_notify_set_selected). */
function selectedEvents(spec: NotifySpec, rest: ImapArg[], checkFetch: (a: ImapArg) => string | null): void {
  const first = rest[0];
  if (atomOf(first)?.toUpperCase() === 'NONE') { if (rest.length > 1) throw new Bad('Invalid arguments.'); return; }
  if (!first || first.type !== 'list' || rest.length > 1 || !first.items.length) throw new Bad('Invalid arguments.');
  const items = first.items;
  for (let i = 0; i < items.length; i++) {
    const ev = eventOf(items[i]);
    spec.selectedEvents.add(ev);
    spec.used.add(ev);
    if (ev === 'MessageNew' && items[i + 1]?.type === 'list') {
      const att = items[++i];
      if (att.type !== 'list' || !att.items.length) throw new Bad('Invalid arguments.');
      const err = checkFetch(att);
      if (err) throw new Bad(`Invalid fetch-att list: ${err}`);
      spec.fetchAtt = att;
    }
  }
  const has = (e: NotifyEvent) => spec.selectedEvents.has(e);
  if (has('MessageNew') !== has('MessageExpunge')) throw new Bad('MessageNew and MessageExpunge must be together');
  if ((has('FlagChange') || has('AnnotationChange')) && !has('MessageExpunge')) throw new Bad('FlagChange requires MessageNew and MessageExpunge');
}

/** cmd_notify_add_mailbox: INBOX upper-cased, duplicates dropped, a subtree inside another dropped. */
function addName(g: NotifyGroup, raw: string): void {
  const name = inboxCased(raw);
  for (let i = 0; i < g.names.length;) {
    const cur = g.names[i];
    if (cur === name) return;
    if (g.type !== 'subtree') { i++; continue; }
    if (name.startsWith(cur) && name[cur.length] === SEP) return;
    if (cur.startsWith(name) && cur[name.length] === SEP) g.names.splice(i, 1); else i++;
  }
  g.names.push(name);
}

function groupFor(spec: NotifySpec, type: NotifyGroup['type'], events: Set<NotifyEvent>): NotifyGroup {
  const key = [...events].sort().join(' ');
  let g = spec.groups.find((x) => x.type === type && [...x.events].sort().join(' ') === key);
  if (!g) { g = { type, names: [], events }; spec.groups.push(g); }
  return g;
}

/**
 * Parse NOTIFY's arguments. `checkFetch` validates a fetch-att list and
 * returns FETCH's error text (null when fine); `mailboxIn` turns a client's
 * mailbox name into the store's form.
 */
export function parseNotify(args: ImapArg[], checkFetch: (a: ImapArg) => string | null, mailboxIn: (s: string) => string = (s) => s): NotifyParse {
  const spec: NotifySpec = { status: false, selectedSet: false, selectedImmediate: false, selectedEvents: new Set(), fetchAtt: null, groups: [], used: new Set() };
  try {
    const verb = atomOf(args[0])?.toUpperCase();
    if (verb === 'SET') setFilters(spec, args.slice(1), checkFetch, mailboxIn);
    else if (verb !== 'NONE') throw new Bad('Invalid arguments.');
  } catch (e) {
    if (e instanceof Bad) return { ok: false, bad: e.message };
    throw e;
  }
  const bad = NOTIFY_EVENTS.filter((e) => spec.used.has(e) && UNSUPPORTED.has(e));
  if (bad.length) return { ok: false, no: 'Unsupported NOTIFY events.', code: 'BADEVENT', args: bad.join(' ') };
  if (spec.groups.some((g) => g.names.length > NOTIFY_MAX_NAMES)) return { ok: false, no: 'Too many mailbox names', code: 'NOTIFICATIONOVERFLOW' };
  return { ok: true, spec };
}

function setFilters(spec: NotifySpec, args: ImapArg[], checkFetch: (a: ImapArg) => string | null, mailboxIn: (s: string) => string): void {
  let k = 0;
  if (atomOf(args[0])?.toUpperCase() === 'STATUS') { spec.status = true; k = 1; }
  for (; k < args.length; k++) {
    const a = args[k];
    if (a.type !== 'list') throw new Bad('Invalid arguments.');
    const filter = atomOf(a.items[0])?.toLowerCase();
    if (filter === undefined) throw new Bad('Invalid arguments.');
    let rest = a.items.slice(1);
    if (filter === 'selected' || filter === 'selected-delayed') {
      if (spec.selectedSet) throw new Bad('Duplicate selected filter');
      spec.selectedSet = true;
      if (filter === 'selected') spec.selectedImmediate = true;
      selectedEvents(spec, rest, checkFetch);
      continue;
    }
    let names: string[] = [];
    if (filter === 'subtree' || filter === 'mailboxes') {
      const m = rest[0];
      if (!m) throw new Bad('Invalid arguments.');
      const one = m.type === 'list' ? null : astring(m);
      if (one !== null) names = [one];
      else if (m.type !== 'list' || !m.items.length) throw new Bad('Invalid arguments.');
      else names = m.items.map((x) => { const s = astring(x); if (s === null || x.type === 'list') throw new Bad('Invalid arguments.'); return s; });
      rest = rest.slice(1);
    }
    if (atomOf(rest[0])?.toUpperCase() === 'NONE') continue; // the default
    const evl = rest[0];
    if (!evl || evl.type !== 'list' || !evl.items.length) throw new Bad('Invalid arguments.');
    const events = new Set<NotifyEvent>();
    for (const e of evl.items) { const ev = eventOf(e); events.add(ev); spec.used.add(ev); }
    if (filter === 'inboxes' || filter === 'personal') addName(groupFor(spec, 'subtree', events), '');
    else if (filter === 'subscribed') addName(groupFor(spec, 'subscribed', events), '');
    else if (filter === 'subtree' || filter === 'mailboxes') {
      const g = groupFor(spec, filter === 'subtree' ? 'subtree' : 'mailboxes', events);
      for (const n of names) addName(g, mailboxIn(n));
    } else throw new Bad('Invalid arguments.');
  }
}

/** imap_notify_match_mailbox: does the group cover mailbox `name`? */
export function groupMatches(g: NotifyGroup, name: string, subscribed: ReadonlySet<string>): boolean {
  if (g.type === 'subscribed') return subscribed.has(name);
  if (g.type === 'mailboxes') return g.names.includes(name);
  return g.names.some((n) => n === '' || (name.startsWith(n) && (name.length === n.length || name[n.length] === SEP)));
}
