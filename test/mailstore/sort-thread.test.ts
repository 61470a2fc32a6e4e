/**
 * The pure parts of SORT/THREAD (src/mailstore/base-subject.ts, sort.ts,
 * thread.ts) on cases the differential corpus doesn't isolate: RFC 5256
 * base-subject steps, Dovecot's message-ID reading, loops and placeholders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { baseSubject } from '../../src/mailstore/base-subject.js';
import { messageIds, threadMessages, type ThreadNode } from '../../src/mailstore/thread.js';
import { sortMessages, type SortHeaders, type SortMessage } from '../../src/mailstore/sort.js';

test('base subject: leaders, blobs, trailers, [fwd: ] and encoded words', () => {
  const cases: [string, string, boolean][] = [
    ['Re: hello', 'HELLO', true],
    ['[list] Re: [x] RE:  Fwd:hello (fwd) (FWD)  ', 'HELLO', true],
    ['[fwd: Re: hello]', 'HELLO', true],
    ['[list]', '[LIST]', false],
    ['Re[2]: x', 'X', true],
    ['re : x', 'X', true],
    ['=?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?=', 'CAFE\u0301 AU LAIT', false],
    ['   ', '', false],
    ['Hello\n\t  world', 'HELLO WORLD', false],
  ];
  for (const [raw, base, rf] of cases) assert.deepEqual(baseSubject(raw), { subject: base, replyOrForward: rf }, raw);
});

test('message IDs: brackets off, whitespace stripped, junk skipped, quoted local parts', () => {
  assert.deepEqual(messageIds('junk <a@b> <no-at> (c) < x @ y >'), ['a@b', 'x@y']);
  assert.deepEqual(messageIds('<"q id"@h> <(c)@h>'), ['q id@h']);
  assert.deepEqual(messageIds(null), []);
  assert.deepEqual(messageIds('<a@b> <c@d>', 1), ['a@b']);
});

const H = (h: Partial<SortHeaders>): SortHeaders => ({ subject: null, from: null, to: null, cc: null, date: null, messageId: null, references: null, inReplyTo: null, ...h });
const msg = (seq: number, h: Partial<SortHeaders>, received = seq * 100): SortMessage => ({ seq, uid: seq, received, size: 100 - seq, h: H(h) });
const show = (ns: ThreadNode[]): string => ns.map((n) => `(${n.n}${n.children.length ? ' ' + show(n.children) : ''})`).join('');

test('REFERENCES: a loop is cut, a missing parent with one child disappears, subjects merge', () => {
  const ms = [
    msg(1, { messageId: '<1@x>', references: '<2@x>', subject: 'loop' }),
    msg(2, { messageId: '<2@x>', references: '<1@x>', subject: 'Re: loop' }),
    msg(3, { messageId: '<3@x>', references: '<gone@x>', subject: 'alone' }),
    msg(4, { messageId: '<4@x>', subject: 'Re: alone' }),
  ];
  assert.equal(show(threadMessages(ms, 'REFERENCES')), '(2 (1))(3 (4))');
  assert.equal(show(threadMessages(ms, 'REFS')), '(2 (1))(0 (3))(4)');
});

test('SORT: REVERSE applies to its key only, ties by sequence', () => {
  const ms = [msg(1, { subject: 'b' }, 5), msg(2, { subject: 'a' }, 5), msg(3, { subject: 'b' }, 1)];
  assert.deepEqual(sortMessages(ms, [{ key: 'SUBJECT', reverse: true }, { key: 'ARRIVAL', reverse: false }]).map((m) => m.seq), [3, 1, 2]);
  assert.deepEqual(sortMessages(ms, [{ key: 'ARRIVAL', reverse: false }]).map((m) => m.seq), [3, 1, 2]);
});

test('SORT compares by code point (strcmp over UTF-8), not by UTF-16 unit', () => {
  const ms = [msg(1, { subject: '\u{1F600} smile' }), msg(2, { subject: '\uE000 private' }), msg(3, { subject: 'z' })];
  assert.deepEqual(sortMessages(ms, [{ key: 'SUBJECT', reverse: false }]).map((m) => m.seq), [3, 2, 1]);
});
