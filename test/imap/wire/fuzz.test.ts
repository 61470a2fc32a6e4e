/**
 * Fuzz: 120k inputs (random bytes, and valid commands with bytes flipped,
 * inserted and cut), seeded so failures replay. The reader must never throw,
 * must make progress, and its buffered state must stay within the line limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandReader } from '../../../src/imap/wire/parser.js';
import { prng } from '../../helpers/prng.js';

const valid = [
  'a1 FETCH 1:*,3 (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>)\r\n',
  'a2 APPEND INBOX (\\Seen) "12-Jan-2024 10:00:00 +0000" {5+}\r\nhello\r\n',
  'a3 LOGIN "user\\"x" {3}\r\npwd\r\n',
  'a4 UID STORE 1:4 +FLAGS.SILENT (\\Deleted $Junk)\r\n',
  'a5 SEARCH CHARSET UTF-8 SUBJECT ~{3}\r\nabc\r\n',
  'a6 LIST "" (a (b (c)) NIL) "*"\r\n',
];

test('reader never throws, never stalls, stays bounded (120k seeded cases)', () => {
  const rnd = prng(0x5ea1);
  const maxLineLength = 512;
  let events = 0;
  for (let n = 0; n < 120_000; n++) {
    let input: Buffer;
    if (n % 3 === 0) {
      input = Buffer.alloc(Math.floor(rnd() * 200));
      for (let i = 0; i < input.length; i++) input[i] = rnd() < 0.3 ? ' (){}"\\\r\n~+*0123'.charCodeAt(Math.floor(rnd() * 18)) : Math.floor(rnd() * 256);
    } else {
      const bytes = [...Buffer.from(valid[Math.floor(rnd() * valid.length)], 'latin1')];
      const edits = 1 + Math.floor(rnd() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rnd() * (bytes.length + 1));
        const op = rnd();
        if (op < 0.4) bytes[at] = Math.floor(rnd() * 256);
        else if (op < 0.7) bytes.splice(at, 0, ...Buffer.from(['{9999}\r\n', '(', ')', '"', '\r\n', '~{2}\r\n', '{70000+}\r\n'][Math.floor(rnd() * 7)], 'latin1'));
        else bytes.splice(at, 1 + Math.floor(rnd() * 5));
      }
      input = Buffer.from(bytes.filter((b) => b !== undefined));
    }
    const r = new CommandReader({ maxLineLength, streamLiteral: (i) => (i.name !== 'APPEND' ? false : i.size < 100 ? true : 'reject') });
    const chunk = 1 + Math.floor(rnd() * 40);
    for (let i = 0; i < input.length; i += chunk) {
      const evs = r.push(input.subarray(i, i + chunk));
      events += evs.length;
      for (const e of evs) {
        if (e.type === 'literal-start' && e === evs[evs.length - 1] && e.info.size > 0 && rnd() < 0.2) r.rejectLiteral();
        if (e.type === 'error') assert.ok(e.offset >= 0 && Number.isInteger(e.offset), `offset ${e.offset}`);
      }
      // bounded: what the reader holds back never exceeds twice the line limit plus a buffered literal
      const held = (r as unknown as { pendingLen: number }).pendingLen;
      assert.ok(held <= 2 * maxLineLength + chunk, `case ${n}: ${held} bytes held`);
    }
    r.end();
  }
  assert.ok(events > 100_000);
});
