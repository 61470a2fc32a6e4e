/**
 * NOTIFY (RFC 5465) for mailboxes other than the selected one, as Dovecot
 * 2.3's imap-notify.c with its mailbox-list-index notifier reports them:
 * mailbox deletes, renames, creates (`* LIST` with \NonExistent / OLDNAME),
 * subscribes and unsubscribes, then a `* STATUS` for each mailbox whose
 * counters moved since it was last looked at (UIDVALIDITY, UIDNEXT, fewer
 * MESSAGES, UNSEEN, a higher HIGHESTMODSEQ), with Dovecot's choice of items.
 *
 * Changes are found cheaply: each watched mailbox has the store's shared
 * change watch (inotify on new/, cur/, dovecot-uidlist plus the in-process
 * bus), which only marks it dirty; the mailbox list has a watch on the root
 * and a two-stat stamp checked on NOOP. Only dirty mailboxes are looked at
 * again, through the store's status cache. At most NOTIFY_MAX_WATCHED
 * mailboxes get a watch; beyond that (Dovecot has a single list index to
 * watch instead), the rest are looked at again on every NOOP.
 */
import type { MailStore } from '../mailstore/store.js';
import type { ChangeSubscription } from '../mailstore/changes.js';
import { groupMatches, type NotifyEvent, type NotifySpec } from './notify-filter.js';
import { astr, atom, list, num, str, type ImapValue } from './wire/encoder.js';

/** Mailboxes given their own change watch; more are looked at again on NOOP only. */
export const NOTIFY_MAX_WATCHED = 1000;
/** Dovecot's NOTIFY_DELAY_MSECS: changes are bundled this long before they are sent between commands. */
export const NOTIFY_DELAY_MS = 500;
/** Dovecot's IMAP_NOTIFY_WATCH_ADD_DELAY_MSECS: with a SELECTED filter the selected mailbox is watched from this long after a command. */
export const NOTIFY_WATCH_SELECTED_DELAY_MS = 1000;

interface Counters { uidvalidity: number; uidnext: number; messages: number; unseen: number; highestModseq: number }
type StatusEvent = 'uidvalidity' | 'appends' | 'expunges' | 'seen' | 'modseq';
type ListEvent = { kind: 'delete' | 'create' | 'subscribe' | 'unsubscribe'; name: string } | { kind: 'rename'; name: string; old: string };

const STATUS_EVENTS: NotifyEvent[] = ['MessageNew', 'MessageExpunge', 'FlagChange'];

/** What NotifyWatch needs of its session. */
export interface NotifyClient {
  readonly store: MailStore | null;
  readonly condstore: boolean;
  /** The selected mailbox's name (no STATUS is sent for it), or null. */
  selectedName(): string | null;
  mailboxOut(name: string): string;
}

export class NotifyWatch {
  private counters = new Map<string, Counters>();
  /** Counters of deleted mailboxes: one created again under the name is compared with them (Dovecot's notify tree keeps its node). */
  private former = new Map<string, Counters>();
  /** Existing mailboxes and their GUIDs (a rename keeps the GUID). */
  private names = new Map<string, string>();
  private subscribed = new Set<string>();
  private watches = new Map<string, ChangeSubscription>();
  private listWatch: ChangeSubscription | null = null;
  private listStamp = '';
  private dirty = new Set<string>();
  private listDirty = false;
  private closed = false;
  /** Told when something became dirty (the session then decides when to look). */
  onDirty: () => void = () => undefined;

  constructor(private readonly client: NotifyClient, readonly spec: NotifySpec, private readonly maxWatched = NOTIFY_MAX_WATCHED) {}

  private get store(): MailStore { return this.client.store!; }

  /** Some group wants STATUS-type events for this mailbox. */
  private wantsStatus(name: string): boolean {
    return this.spec.groups.some((g) => STATUS_EVENTS.some((e) => g.events.has(e)) && groupMatches(g, name, this.subscribed));
  }

  private get wantsList(): boolean {
    return this.spec.groups.length > 0;
  }

  /** Take the first look: mailbox list, subscriptions, counters of the mailboxes to watch. */
  async start(): Promise<void> {
    if (!this.wantsList) return;
    this.listStamp = await this.store.listStamp();
    this.listWatch = this.store.watchList(() => this.markList());
    ({ names: this.names, subscribed: this.subscribed } = await this.readList());
    for (const name of this.names.keys()) await this.track(name);
  }

  private markList(): void {
    if (this.closed) return;
    this.listDirty = true;
    this.onDirty();
  }

  private async readList(): Promise<{ names: Map<string, string>; subscribed: Set<string> }> {
    const names = new Map<string, string>();
    for (const f of await this.store.listInfo()) {
      if (!f.exists) continue;
      // GUIDs tell renames from delete+create: only needed when MailboxName is asked for
      const guid = this.spec.used.has('MailboxName') ? this.names.get(f.name) ?? await this.store.mailboxGuid(f.name).catch(() => '') : '';
      names.set(f.name, guid);
    }
    const subscribed = new Set(await this.store.subscriptions());
    return { names, subscribed };
  }

  /** Start watching a mailbox matched by a STATUS-type filter (its counters now are the base). */
  private async track(name: string): Promise<void> {
    if (this.counters.has(name) || !this.wantsStatus(name)) return;
    const former = this.former.get(name);
    this.former.delete(name);
    if (former) { this.counters.set(name, former); this.dirty.add(name); } else this.counters.set(name, await this.countersOf(name));
    if (this.watches.size < this.maxWatched) {
      this.watches.set(name, this.store.watchMailbox(name, () => { if (!this.closed) { this.dirty.add(name); this.onDirty(); } }));
    }
  }

  private untrack(name: string, deleted = false): void {
    const c = this.counters.get(name);
    if (deleted && c) this.former.set(name, c);
    this.counters.delete(name);
    this.watches.get(name)?.close();
    this.watches.delete(name);
    this.dirty.delete(name);
  }

  private async countersOf(name: string): Promise<Counters> {
    // HIGHESTMODSEQ only matters (and modseqs are only switched on for the mailbox) with CONDSTORE on
    // (SET STATUS with FlagChange is about to switch CONDSTORE on)
    const st = await this.store.status(name, this.client.condstore || (this.spec.status && this.spec.used.has('FlagChange')));
    return { uidvalidity: st.uidvalidity, uidnext: st.uidnext, messages: st.messages, unseen: st.unseen, highestModseq: st.highestModseq };
  }

  get pending(): boolean { return this.listDirty || this.dirty.size > 0; }

  /**
   * NOOP's flush (imap_notify_flush): the list stamp is checked, and the
   * mailboxes without a watch of their own are looked at again.
   */
  async flush(): Promise<void> {
    if (!this.wantsList) return;
    // a change just made by another process: its inotify event is handled before we look
    await new Promise((r) => setImmediate(r));
    const stamp = await this.store.listStamp();
    if (stamp !== this.listStamp) this.listDirty = true;
    for (const name of this.counters.keys()) if (!this.watches.has(name)) this.dirty.add(name);
  }

  /** The responses for everything that changed since the last look, in Dovecot's order. */
  async collect(): Promise<ImapValue[][]> {
    const out: ImapValue[][] = [];
    if (this.closed) return out;
    if (this.listDirty) {
      this.listDirty = false;
      this.listStamp = await this.store.listStamp();
      for (const ev of await this.listChanges()) {
        if (this.matchesList(ev)) out.push(this.listLine(ev));
      }
    }
    const dirty = [...this.dirty];
    this.dirty.clear();
    for (const name of dirty) {
      const old = this.counters.get(name);
      if (!old) continue;
      let now: Counters;
      try { now = await this.countersOf(name); } catch { continue; } // deleted meanwhile: the list change says so
      this.counters.set(name, now);
      const events = new Set<StatusEvent>();
      if (old.uidvalidity !== now.uidvalidity) events.add('uidvalidity');
      if (old.uidnext !== now.uidnext) events.add('appends');
      if (old.messages > now.messages) events.add('expunges');
      if (old.unseen !== now.unseen) events.add('seen');
      if (old.highestModseq < now.highestModseq) events.add('modseq');
      if (!events.size || name === this.client.selectedName() || !this.matchesStatus(name, events)) continue;
      const line = this.statusLine(name, events, now);
      if (line) out.push(line);
    }
    return out;
  }

  /** Deletes, renames, creates, subscribes, unsubscribes (mailbox_list_index_notify_try_next's order). */
  private async listChanges(): Promise<ListEvent[]> {
    const before = this.names;
    const subsBefore = this.subscribed;
    const { names, subscribed } = await this.readList();
    this.names = names;
    this.subscribed = subscribed;
    const gone = [...before.keys()].filter((n) => !names.has(n));
    const added = [...names.keys()].filter((n) => !before.has(n));
    const renames: ListEvent[] = [];
    for (const n of [...added]) {
      const g = names.get(n);
      const old = g ? gone.find((o) => before.get(o) === g) : undefined;
      if (old === undefined) continue;
      renames.push({ kind: 'rename', name: n, old });
      gone.splice(gone.indexOf(old), 1);
      added.splice(added.indexOf(n), 1);
    }
    for (const n of gone) this.untrack(n, true);
    for (const r of renames) if (r.kind === 'rename') this.untrack(r.old);
    for (const n of [...added, ...renames.map((r) => r.name)]) await this.track(n);
    // a subscription can bring a mailbox into (or out of) a SUBSCRIBED filter
    for (const n of names.keys()) { if (!this.wantsStatus(n)) this.untrack(n); else await this.track(n); }
    return [
      ...gone.map((name) => ({ kind: 'delete' as const, name })),
      ...renames,
      ...added.map((name) => ({ kind: 'create' as const, name })),
      ...[...subscribed].filter((n) => !subsBefore.has(n)).map((name) => ({ kind: 'subscribe' as const, name })),
      ...[...subsBefore].filter((n) => !subscribed.has(n)).map((name) => ({ kind: 'unsubscribe' as const, name })),
    ];
  }

  private matchesList(ev: ListEvent): boolean {
    const want: NotifyEvent = ev.kind === 'subscribe' || ev.kind === 'unsubscribe' ? 'SubscriptionChange' : 'MailboxName';
    return this.spec.groups.some((g) => g.events.has(want) && groupMatches(g, ev.name, this.subscribed));
  }

  /** imap_notify_match_event for STATUS-type changes. */
  private matchesStatus(name: string, events: Set<StatusEvent>): boolean {
    return this.spec.groups.some((g) => {
      const w = (e: NotifyEvent) => g.events.has(e);
      const hit = (events.has('uidvalidity') && (w('MessageNew') || w('MessageExpunge') || w('FlagChange')))
        || (events.has('appends') && w('MessageNew'))
        || (events.has('expunges') && w('MessageExpunge'))
        || ((events.has('seen') || events.has('modseq')) && w('FlagChange'));
      return hit && groupMatches(g, name, this.subscribed);
    });
  }

  /** imap_notify_list: `* LIST (flags) "." name [("OLDNAME" (old))]`. */
  private listLine(ev: ListEvent): ImapValue[] {
    const flags = ev.kind === 'delete' ? [atom('\\NonExistent')] : ev.kind === 'subscribe' ? [atom('\\Subscribed')] : [];
    const line: ImapValue[] = [atom('LIST'), list(flags), str('.'), astr(this.client.mailboxOut(ev.name))];
    if (ev.kind === 'rename') line.push(list([str('OLDNAME'), list([astr(this.client.mailboxOut(ev.old))])]));
    return line;
  }

  /** imap_notify_status: the items the events call for, HIGHESTMODSEQ with CONDSTORE on. */
  private statusLine(name: string, events: Set<StatusEvent>, c: Counters): ImapValue[] | null {
    const items = new Set<string>();
    if (events.has('uidvalidity')) ['UIDVALIDITY', 'UIDNEXT', 'MESSAGES', 'UNSEEN'].forEach((i) => items.add(i));
    if (events.has('appends') || events.has('expunges')) ['UIDNEXT', 'MESSAGES', 'UNSEEN'].forEach((i) => items.add(i));
    if (events.has('seen')) items.add('UNSEEN');
    if (!items.size && !(this.client.condstore && events.has('modseq'))) return null;
    if (this.client.condstore) items.add('HIGHESTMODSEQ');
    return statusValues(this.client.mailboxOut(name), items, c);
  }

  /**
   * NOTIFY SET STATUS (imap_notify_ns_send_status): a STATUS for every
   * existing mailbox some filter matches when any filter wants STATUS-type
   * events, the selected one excepted, in list order with INBOX first.
   */
  async initialStatus(): Promise<Array<{ name: string; withModseq: boolean }>> {
    if (!this.spec.groups.some((g) => STATUS_EVENTS.some((e) => g.events.has(e)))) return [];
    const withModseq = this.spec.used.has('FlagChange');
    const names = [...this.names.keys()];
    const ordered = [...names.filter((n) => n === 'INBOX'), ...names.filter((n) => n !== 'INBOX')];
    return ordered.filter((n) => n !== this.client.selectedName() && this.spec.groups.some((g) => groupMatches(g, n, this.subscribed)))
      .map((name) => ({ name, withModseq }));
  }

  close(): void {
    this.closed = true;
    this.listWatch?.close();
    for (const w of this.watches.values()) w.close();
    this.watches.clear();
  }
}

/** `* STATUS name (...)` in Dovecot's item order. */
export function statusValues(name: string, items: Set<string>, c: Counters): ImapValue[] {
  const values: Record<string, number> = { MESSAGES: c.messages, UIDNEXT: c.uidnext, UIDVALIDITY: c.uidvalidity, UNSEEN: c.unseen, HIGHESTMODSEQ: c.highestModseq };
  const order = ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'HIGHESTMODSEQ'].filter((k) => items.has(k));
  return [atom('STATUS'), astr(name), list(order.flatMap((k) => [atom(k), num(values[k])]))];
}
