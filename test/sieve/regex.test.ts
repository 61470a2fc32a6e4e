/**
 * The POSIX ERE matcher behind Sieve :regex (src/sieve/regex.ts) beyond the
 * sieve-test differential: glibc's regerror texts, the program-size cap,
 * the step limit (no match, reported), back references, the same answer
 * with and without submatches, and that a long match yields to the event
 * loop (an immediate scheduled when it starts runs before it ends).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRegex, execRegex, RegexLimitError, RegexSyntaxError, MAX_PROGRAM } from '../../src/sieve/regex.js';
import { matchAny } from '../../src/sieve/match.js';

const err = (p: string) => { try { compileRegex(p, false); return null; } catch (e) { assert.ok(e instanceof RegexSyntaxError); return e.message; } };

test('glibc regcomp error texts', () => {
  assert.equal(err('*a'), 'Invalid preceding regular expression');
  assert.equal(err('a|*b'), 'Invalid preceding regular expression');
  assert.equal(err('^*'), 'Invalid preceding regular expression');
  assert.equal(err('a{1'), 'Unmatched \\{');
  assert.equal(err('a{2,1}'), 'Invalid content of \\{\\}');
  assert.equal(err('a{x}'), 'Invalid content of \\{\\}');
  assert.equal(err('a{32768}'), 'Regular expression too big');
  assert.equal(err('(a'), 'Unmatched ( or \\(');
  assert.equal(err('[a'), 'Unmatched [, [^, [:, [., or [=');
  assert.equal(err('['), 'Invalid regular expression');
  assert.equal(err('a\\'), 'Trailing backslash');
  assert.equal(err('(a)\\2'), 'Invalid back reference');
  assert.equal(err('[z-a]'), 'Invalid range end');
  assert.equal(err('[[:foo:]]'), 'Invalid character class name');
  assert.equal(err('[[.ab.]]'), 'Invalid collation character');
  assert.equal(err('a)'), null); // an unmatched ')' is an ordinary character
  assert.equal(err('()|a|'), null);
});

test('a pattern over the program cap is "Regular expression too big"', () => {
  assert.equal(err('(a{1,100}){50}'), 'Regular expression too big');
  assert.ok(compileRegex('(a{1,10}){20}', false).prog.length < MAX_PROGRAM);
});

test('submatches, classes, anchors, icase, back references', async () => {
  const m = async (p: string, v: string, icase = false) => execRegex(compileRegex(p, icase), v);
  assert.deepEqual(await m('^(.*)@(.*)$', 'john@example.org'), ['john@example.org', 'john', 'example.org']);
  assert.deepEqual(await m('(a|ab)(c|bcd)(d*)', 'abcd'), ['abcd', 'a', 'bcd', '']);
  assert.deepEqual(await m('(a|()){1,2}', 'a'), ['a', 'a', '']);
  assert.deepEqual(await m('[[:digit:]]+', 'x42y'), ['42']);
  assert.deepEqual(await m('^BUY', 'buy now', true), ['buy']);
  assert.equal(await m('^BUY', 'buy now'), null);
  assert.deepEqual(await m('^(ab+)\\1$', 'abbabb'), ['abbabb', 'abb']);
  assert.equal(await m('^(ab+)\\1$', 'abbab'), null);
  assert.deepEqual(await m('x*', ''), ['']);
  assert.deepEqual(await m('\\<(\\w+)$', 'foo bar'), ['bar', 'bar']);
});

test('with and without submatches the answer is the same', async () => {
  for (const [p, v] of [['^(a+)+$', 'a'.repeat(3000) + '!'], ['(a|aa)+!$', 'a'.repeat(3000) + '!'], ['b(c|d)*e', 'xxbcdcdex'], ['^$', ''], ['a$|^b', 'ccb']]) {
    const re = compileRegex(p, false);
    assert.equal(!!(await execRegex(re, v, false)), !!(await execRegex(re, v, true)), p);
  }
});

test('past the step limit: no match, reported, never a hang', { timeout: 120_000 }, async () => {
  const re = compileRegex('(a{1,50}){60}x', false);
  await assert.rejects(execRegex(re, 'a'.repeat(20000)), RegexLimitError);
  const warnings: string[] = [];
  assert.equal(await matchAny(['a'.repeat(20000)], ['(a{1,50}){60}x'], { type: 'regex', comparator: 'i;octet' }, undefined, (w) => warnings.push(w)), false);
  assert.match(warnings.join('\n'), /regular expression match exceeded its step limit/);
});

test('a long match yields to the event loop', async () => {
  const re = compileRegex('^(a|aa|a{1,3})+(a+)+b', false);
  const order: string[] = [];
  setImmediate(() => order.push('immediate'));
  await execRegex(re, 'a'.repeat(50000), true).then(() => order.push('match'));
  assert.deepEqual(order, ['immediate', 'match']);
});

test('an invalid key built at run time never matches and is reported with Pigeonhole\'s text', async () => {
  const warnings: string[] = [];
  assert.equal(await matchAny(['abc'], ['a(', 'abc'], { type: 'regex', comparator: 'i;ascii-casemap' }, undefined, (w) => warnings.push(w)), true);
  assert.deepEqual(warnings, ["invalid regular expression 'a(' for regex match: unmatched ( or \\("]);
});

test('the matches of one run share a step budget', { timeout: 120_000 }, async () => {
  const budget = { left: 1_000_000 };
  const re = compileRegex('(a|aa)+b', false);
  let n = 0, gaveUp = false;
  for (; n < 1000 && !gaveUp; n++) {
    try { await execRegex(re, 'a'.repeat(5000), false, budget); } catch (e) { assert.ok(e instanceof RegexLimitError); gaveUp = true; }
  }
  assert.ok(gaveUp && n < 1000, `${n} matches`);
  assert.ok(budget.left <= 0);
});
