/**
 * CONTEXT=SEARCH contexts (src/imap/search-updates.ts) without a server:
 * which messages a sync tests again (flag changes only when the program
 * tests flags; new messages always), sequence and UID sets frozen to the
 * messages they named, expunged matches leaving the result, the maximum
 * of contexts, CANCELUPDATE. The wire side is checked against Dovecot by
 * the differential scripts 25-context-search.imap and
 * 43-context-search-sessions.imap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Query } from '../../src/mailstore/search.js';
import { MAX_SEARCH_UPDATES, SearchUpdates } from '../../src/imap/search-updates.js';

/** A toy evaluator: flag queries look at `seen`, uid sets at the UID, everything else matches. */
function tester(seen: Set<number>, calls: number[]) {
  const ev = (q: Query, uid: number): boolean => {
    switch (q.k) {
      case 'flag': return seen.has(uid) === q.want;
      case 'uid': return q.set.some(([a, b]) => uid >= a && uid <= b);
      case 'and': return q.of.every((x) => ev(x, uid));
      case 'not': return !ev(q.q, uid);
      default: return true;
    }
  };
  return async (q: Query, uid: number) => { calls.push(uid); return ev(q, uid); };
}

test('a flag program is tested again on flag changes and new messages; others only on new messages', async () => {
  const su = new SearchUpdates();
  su.add('f', false, { k: 'flag', flag: '\\Seen', want: true }, [1, 3], [1, 2, 3], null);
  su.add('s', true, { k: 'header', name: 'subject', v: 'x' }, [1, 2, 3], [1, 2, 3], null);
  const seen = new Set([2, 3, 4]);
  const calls: number[] = [];
  const ch = await su.changed([1, 2], [4], tester(seen, calls));
  assert.deepEqual(ch.map((c) => [c.ctx.tag, c.adds, c.removes]), [['f', [2, 4], [1]], ['s', [4], []]]);
  assert.deepEqual(calls, [1, 2, 4, 4], 'the subject program is not tested for flag changes');
  // nothing changed: nothing reported
  assert.deepEqual(await su.changed([1, 2], [], tester(seen, [])), []);
});

test('sequence and UID sets stand for the messages they named when the search ran', async () => {
  const su = new SearchUpdates();
  // sequence 2:3 of UIDs 10, 20, 30 is UIDs 20 and 30; UID 15:* is cut at 30
  su.add('q', false, { k: 'seq', set: [[2, 3]] }, [20, 30], [10, 20, 30], null);
  su.add('u', true, { k: 'uid', set: [[15, 0xffffffff]] }, [20, 30], [10, 20, 30], null);
  const ch = await su.changed([], [40], tester(new Set(), []));
  assert.deepEqual(ch, [], 'a new message is in neither set');
});

test('expunged matches leave every context that had them', async () => {
  const su = new SearchUpdates();
  su.add('a', false, { k: 'all' }, [1, 2, 3], [1, 2, 3], null);
  su.add('b', true, { k: 'flag', flag: '\\Seen', want: true }, [2], [1, 2, 3], null);
  const ch = su.expunged([3, 2]);
  assert.deepEqual(ch.map((c) => [c.ctx.tag, c.removes]), [['a', [2, 3]], ['b', [2]]]);
  assert.deepEqual(su.expunged([2, 3]), [], 'already gone');
});

test('at most MAX_SEARCH_UPDATES contexts; CANCELUPDATE by tag', () => {
  const su = new SearchUpdates();
  for (let i = 0; i < MAX_SEARCH_UPDATES; i++) su.add(`t${i}`, false, { k: 'all' }, [], [], null);
  assert.equal(su.full(), true);
  assert.equal(su.cancel('nosuch'), false);
  assert.equal(su.cancel('t3'), true);
  assert.equal(su.has('t3'), false);
  assert.equal(su.full(), false);
  assert.equal(su.size, MAX_SEARCH_UPDATES - 1);
});
