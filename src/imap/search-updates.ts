/**
 * CONTEXT=SEARCH update contexts (RFC 5267 §4) of one selected mailbox, as
 * Dovecot 2.3 keeps them (imap-search.c, imap-sync.c, lib-storage's
 * search-result updating): SEARCH/SORT RETURN (UPDATE) leaves the UIDs of
 * every match; at each sync the client hears `* ESEARCH (TAG "t") [UID]
 * REMOVEFROM (0 set) ADDTO (0 set)` for what changed. Expunged matches are
 * reported first, before any FETCH or EXPUNGE of that sync, by their old
 * sequence numbers; then, after EXISTS/RECENT, messages whose flags,
 * keywords or MODSEQ changed (only when the program tests one of those) and
 * new messages are tested again, one by one, never the whole mailbox.
 * Sequence and UID sets in the program stand for the messages they named
 * when the search ran (Dovecot's mail_search_args_seq2uid).
 * At most MAX_SEARCH_UPDATES contexts; CANCELUPDATE drops them, and they
 * end with the mailbox's selection.
 */
import type { Query } from '../mailstore/search.js';
import { normalizeSequenceSet } from './wire/sequence.js';

/** Dovecot's CLIENT_MAX_SEARCH_UPDATES: beyond it SEARCH answers `* NO [NOUPDATE "tag"]`. */
export const MAX_SEARCH_UPDATES = 10;

/** Sends the FETCH of UPDATE (fetch-att) for one message (sequence number, UID). */
export type UpdateFetch = (seq: number, uid: number) => Promise<void>;

export interface SearchContext {
  tag: string;
  /** UID SEARCH/SORT: updates name UIDs, else sequence numbers. */
  uid: boolean;
  query: Query;
  /** UIDs matching now. */
  result: Set<number>;
  /** The program tests flags, keywords or MODSEQ: flag changes may move a message in or out. */
  flagsMatter: boolean;
  /** UPDATE (fetch-att): a FETCH of these items for each new message added (Dovecot's extension). */
  fetch: UpdateFetch | null;
}

/** What one context gained and lost in a sync, in UIDs, ascending. */
export interface ContextChange { ctx: SearchContext; adds: number[]; removes: number[] }

function flagsMatter(q: Query): boolean {
  switch (q.k) {
    case 'flag': case 'keyword': case 'modseq': case 'recent': case 'new': case 'old': return true;
    case 'and': case 'or': return q.of.some(flagsMatter);
    case 'not': return flagsMatter(q.q);
    default: return false;
  }
}

const ranges = (uids: number[]): [number, number][] =>
  normalizeSequenceSet(uids.map((u) => ({ from: u, to: u })), 0).map((r) => [r.from, r.to]);

/** The program with its sequence sets turned into the UIDs they name now, and UID sets cut at the highest UID now (new messages never match them). */
function fixSets(q: Query, uids: number[]): Query {
  switch (q.k) {
    case 'seq': return { k: 'uid', set: ranges(q.set.flatMap(([from, to]) => uids.slice(from - 1, to))) };
    case 'uid': {
      const max = uids.length ? uids[uids.length - 1] : 0;
      return { k: 'uid', set: q.set.filter(([from]) => from <= max).map(([from, to]): [number, number] => [from, Math.min(to, max)]) };
    }
    case 'and': case 'or': return { k: q.k, of: q.of.map((x) => fixSets(x, uids)) };
    case 'not': return { k: 'not', q: fixSets(q.q, uids) };
    default: return q;
  }
}

/** Messages tested at once (as SEARCH's window in commands/search.ts). */
const TEST_WINDOW = 32;

export class SearchUpdates {
  private contexts: SearchContext[] = [];

  get size(): number { return this.contexts.length; }
  has(tag: string): boolean { return this.contexts.some((c) => c.tag === tag); }
  full(): boolean { return this.contexts.length >= MAX_SEARCH_UPDATES; }

  /** A new context: `matches` are the UIDs the search found, `uids` the mailbox's UIDs in sequence order as the client knows them. */
  add(tag: string, uid: boolean, query: Query, matches: number[], uids: number[], fetch: UpdateFetch | null): void {
    this.contexts.push({ tag, uid, query: fixSets(query, uids), result: new Set(matches), flagsMatter: flagsMatter(query), fetch });
  }

  /** CANCELUPDATE of one tag: false when there is no such context. */
  cancel(tag: string): boolean {
    const i = this.contexts.findIndex((c) => c.tag === tag);
    if (i < 0) return false;
    this.contexts.splice(i, 1);
    return true;
  }

  /** Matches among messages about to be announced expunged: each context's removals (UIDs, ascending), which leave its result. */
  expunged(gone: number[]): ContextChange[] {
    const out: ContextChange[] = [];
    if (!gone.length) return out;
    for (const ctx of this.contexts) {
      const removes = gone.filter((u) => ctx.result.delete(u)).sort((a, b) => a - b);
      if (removes.length) out.push({ ctx, adds: [], removes });
    }
    return out;
  }

  /**
   * After a sync: `changed` messages (flags, keywords or MODSEQ moved, this
   * session's own STOREs included) and `added` ones (new to the client) are
   * tested again where they can matter; `test` says whether one matches now
   * (undefined: gone meanwhile, left as it is).
   */
  async changed(changed: number[], added: number[], test: (q: Query, uid: number) => Promise<boolean | undefined>): Promise<ContextChange[]> {
    const out: ContextChange[] = [];
    if (!changed.length && !added.length) return out;
    for (const ctx of this.contexts) {
      const candidates = ctx.flagsMatter ? [...new Set([...changed, ...added])] : added;
      if (!candidates.length) continue;
      const adds: number[] = [];
      const removes: number[] = [];
      candidates.sort((a, b) => a - b);
      // a window of messages at a time, concurrently: a body search's reads overlap
      for (let i = 0; i < candidates.length; i += TEST_WINDOW) {
        const window = candidates.slice(i, i + TEST_WINDOW);
        const verdicts = await Promise.all(window.map((u) => test(ctx.query, u)));
        window.forEach((u, k) => {
          const now = verdicts[k];
          if (now === undefined) return;
          if (now && !ctx.result.has(u)) { ctx.result.add(u); adds.push(u); }
          else if (!now && ctx.result.delete(u)) removes.push(u);
        });
      }
      if (adds.length || removes.length) out.push({ ctx, adds, removes });
    }
    return out;
  }
}
