/**
 * RETR/TOP encoding (src/pop3/message-encoder.ts) does not depend on how
 * the message arrives in chunks: CR and LF split across chunks, a dot at
 * the start of a chunk after a LF at the end of the previous one, the
 * header/body boundary on a chunk edge. Random messages, every split
 * compared with the one-chunk encoding; plus the cases the differential
 * with Dovecot does not reach at a chunk edge.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pop3MessageEncoder } from '../../src/pop3/message-encoder.js';

function encode(chunks: Buffer[], lines: number | null): string {
  const e = new Pop3MessageEncoder(lines);
  const out: Buffer[] = [];
  for (const c of chunks) { out.push(e.push(c)); if (e.done) break; }
  out.push(e.end());
  return Buffer.concat(out).toString('latin1');
}

test('known encodings: LF to CRLF, dot-stuffing after a line end only, final CRLF, TOP counts body lines', () => {
  assert.equal(encode([Buffer.from('.a\n.b\r\n..c')], null), '.a\r\n..b\r\n...c\r\n');
  assert.equal(encode([Buffer.from('H: 1\n\nl1\nl2\nl3\n')], 2), 'H: 1\r\n\r\nl1\r\nl2\r\n');
  assert.equal(encode([Buffer.from('H: 1\n\nl1\n')], 0), 'H: 1\r\n\r\n');
  assert.equal(encode([Buffer.from('\nbody\n')], 0), '\r\n');
  assert.equal(encode([Buffer.from('H: only')], 0), 'H: only\r\n');
  assert.equal(encode([Buffer.alloc(0)], null), '\r\n');
  assert.equal(encode([Buffer.from('a\rb\n')], null), 'a\rb\r\n');
});

test('chunk boundaries never change the encoding (random messages, random splits)', () => {
  let seed = 7;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const alphabet = ['\n', '\r', '.', 'a', ' ', '\r\n', '\n\n', '..'];
  for (let i = 0; i < 2000; i++) {
    const msg = Buffer.from(Array.from({ length: rnd(40) }, () => alphabet[rnd(alphabet.length)]).join(''), 'latin1');
    const lines = rnd(3) === 0 ? null : rnd(4);
    const whole = encode([msg], lines);
    const chunks: Buffer[] = [];
    for (let at = 0; at < msg.length;) { const n = 1 + rnd(4); chunks.push(msg.subarray(at, at + n)); at += n; }
    assert.equal(encode(chunks, lines), whole, `${JSON.stringify(msg.toString('latin1'))} lines=${lines}`);
  }
});
