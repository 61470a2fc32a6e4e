/** Sequence sets: Dovecot 2.3's accepted syntax (probed on the real server) and normalising. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSequenceSet, normalizeSequenceSet, formatSequenceSet, SequenceSetError, STAR, sequenceSetReason } from '../../../src/imap/wire/sequence.js';

test('accepted forms', () => {
  assert.deepEqual(parseSequenceSet('1:*,3'), { type: 'set', ranges: [{ from: 1, to: STAR }, { from: 3, to: 3 }] });
  assert.deepEqual(parseSequenceSet('*:4'), { type: 'set', ranges: [{ from: STAR, to: 4 }] });
  assert.deepEqual(parseSequenceSet('01'), { type: 'set', ranges: [{ from: 1, to: 1 }] });
  assert.deepEqual(parseSequenceSet('1,'), { type: 'set', ranges: [{ from: 1, to: 1 }] }); // Dovecot tolerates it
  assert.deepEqual(parseSequenceSet('4294967295'), { type: 'set', ranges: [{ from: 4294967295, to: 4294967295 }] });
  assert.deepEqual(parseSequenceSet('$'), { type: 'saved' });
});

test('rejected forms, with the byte position', () => {
  const cases: Array<[string, number]> = [['0', 0], ['1:x', 2], ['4294967296', 0], [',', 0], [',1', 0], ['1,,2', 2], ['1:', 2], ['1:*:3', 2], ['-1', 0], ['$,1', 0], ['', 0], ['1:0', 2]];
  for (const [text, at] of cases) {
    assert.throws(() => parseSequenceSet(text, 100), (e: unknown) => e instanceof SequenceSetError && e.offset === 100 + at, text);
  }
  assert.equal(sequenceSetReason(false), 'Invalid messageset');
  assert.equal(sequenceSetReason(true), 'Invalid uidset');
});

test('normalising resolves *, orders ends, merges overlaps and neighbours', () => {
  const set = parseSequenceSet('7,*:4,1:2,3,10:9');
  assert.ok(set.type === 'set');
  if (set.type !== 'set') return;
  assert.deepEqual(normalizeSequenceSet(set.ranges, 6), [{ from: 1, to: 7 }, { from: 9, to: 10 }]);
  assert.equal(formatSequenceSet(normalizeSequenceSet(set.ranges, 6)), '1:7,9:10');
  assert.deepEqual(normalizeSequenceSet([{ from: STAR, to: 4 }], 2), [{ from: 2, to: 4 }]);
});
