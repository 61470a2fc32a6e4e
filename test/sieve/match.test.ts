/**
 * :matches, comparators and relational edge cases beyond the sieve-test
 * differential: wildcard values for ${N}, escapes, case folding only for
 * ASCII under i;ascii-casemap, and a hostile pattern on a long header that
 * the linear-backtracking glob must still answer (correctly) at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchAny, type MatchSpec } from '../../src/sieve/match.js';

const M: MatchSpec = { type: 'matches', comparator: 'i;ascii-casemap' };

async function caps(v: string, k: string, spec = M): Promise<string[] | null> {
  let c: string[] | null = null;
  return (await matchAny([v], [k], spec, (x) => { c = x; })) ? c ?? [] : null;
}

test(':matches wildcard values', async () => {
  assert.deepEqual(await caps('Alice <alice@x.example> (home)', '*<*@*>*'), ['Alice <alice@x.example> (home)', 'Alice ', 'alice', 'x.example', ' (home)']);
  assert.deepEqual(await caps('a.b.c', '*.*'), ['a.b.c', 'a', 'b.c']);
  assert.deepEqual(await caps('abc', '?*?'), ['abc', 'a', 'b', 'c']);
  assert.deepEqual(await caps('', '*'), ['', '']);
  assert.equal(await caps('abc', 'ab'), null);
  assert.equal(await caps('', '?'), null);
});

test(':matches escapes and case rules', async () => {
  assert.ok(await caps('a*b', 'a\\*b'));
  assert.equal(await caps('axb', 'a\\*b'), null);
  assert.ok(await caps('a?b', 'a\\?b'));
  assert.ok(await caps('HELLO', 'hel*'));
  assert.equal(await caps('HELLO', 'hel*', { type: 'matches', comparator: 'i;octet' }), null);
  assert.equal(await caps('Ä', 'ä'), null); // i;ascii-casemap folds ASCII only
});

test('a hostile pattern on a long value is answered correctly', async () => {
  const v = 'a'.repeat(20000);
  assert.equal(await caps(v, '*a*a*a*a*a*a*a*a*a*a*b'), null);
  assert.ok(await caps(v + 'b', '*a*a*a*a*a*a*a*a*a*a*b'));
});

test('relational with i;ascii-numeric and :count', async () => {
  const num = (rel: string): MatchSpec => ({ type: 'value', rel, comparator: 'i;ascii-numeric' });
  assert.ok(await matchAny(['12'], ['9'], num('gt')));
  assert.ok(!await matchAny(['12'], ['9'], { type: 'value', rel: 'gt', comparator: 'i;ascii-casemap' })); // "12" < "9" as strings
  assert.ok(await matchAny(['abc'], ['99999999999999999999'], num('gt'))); // no digits = +infinity
  assert.ok(await matchAny(['007'], ['7'], num('eq')));
  assert.ok(await matchAny(['a', 'b', 'c'], ['3'], { type: 'count', rel: 'eq', comparator: 'i;ascii-numeric' }));
});

test(':matches on a long value yields to the event loop and stays within its step limit', { timeout: 120_000 }, async () => {
  const order: string[] = [];
  setImmediate(() => order.push('immediate'));
  const r = await matchAny(['a'.repeat(300_000)], ['*' + 'a'.repeat(50) + 'b*'], M).then((x) => { order.push('match'); return x; });
  assert.equal(r, false);
  assert.deepEqual(order, ['immediate', 'match']);
  assert.deepEqual((await caps('x' + 'a'.repeat(300_000) + 'b', '*' + 'a'.repeat(50) + 'b'))?.[1]?.length, 300_000 - 50 + 1);
  const warnings: string[] = [];
  assert.equal(await matchAny(['a'.repeat(1_000_000)], ['*' + 'a'.repeat(50) + 'b*'], M, undefined, (w) => warnings.push(w)), false);
  assert.match(warnings.join(), /wildcard match exceeded its step limit/);
});
