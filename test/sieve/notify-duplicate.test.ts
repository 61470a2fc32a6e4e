/**
 * The parts of enotify, duplicate and spamtest that sieve-test cannot show:
 * the mailto parser's limits and warnings (uri-mailto.c), :encodeurl on
 * multi-byte text, the lda-dupes file (Dovecot's layout, expiry, a damaged
 * file, a stale dotlock) and the spamtest `strlen`/`text` status types and
 * configuration errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { parseMailto, encodeUrl, MAILTO_MAX_RECIPIENTS, MAILTO_MAX_HEADERS } from '../../src/sieve/notify.js';
import { duplicateExists, duplicateId, markDuplicates, DUPES_DB } from '../../src/sieve/duplicate.js';
import { spamVirusValue } from '../../src/sieve/spamtest.js';
import { parseMessage } from '../../src/sieve/message.js';

function parse(body: string) {
  const errors: string[] = [], warnings: string[] = [];
  const uri = parseMailto(body, { error: (m) => errors.push(m), warning: (m) => warnings.push(m) });
  return { uri, errors, warnings };
}

test('mailto: at most 8 recipients and 16 header fields, the rest dropped with Pigeonhole\'s warnings', () => {
  const rcpts = Array.from({ length: 10 }, (_, i) => `u${i}@x.example`);
  const r = parse(`${rcpts.join('%2C')}?${Array.from({ length: 18 }, (_, i) => `X-H${i}=v`).join('&')}`);
  assert.equal(r.uri!.recipients.length, MAILTO_MAX_RECIPIENTS);
  assert.equal(r.uri!.headers.length, MAILTO_MAX_HEADERS);
  // (uri-mailto.c warns for every recipient past the limit, once for the header fields)
  const over = 'more than the maximum 8 recipients specified; rest is discarded';
  assert.deepEqual(r.warnings, [over, over, 'more than the maximum 16 headers specified; rest is discarded']);
});

test('mailto: percent-decoding builds UTF-8; %00 and CR/LF in a field are refused', () => {
  assert.equal(parse('a@x.example?body=Gr%C3%BC%C3%9Fe').uri!.body, 'Grüße');
  assert.deepEqual(parse('a@x.example?subject=a%00b').errors, ['invalid % encoding']);
  assert.deepEqual(parse('a@x.example?subject=a%0D%0ABcc%3A%20x@y.example').errors, ['invalid header field body']);
  // a long hostile URI is one pass
  const long = parse('a@x.example?subject=' + '%20'.repeat(200_000));
  assert.equal(long.uri!.subject!.length, 200_000);
});

test(':encodeurl: every byte outside the unreserved set, upper-case hex', () => {
  assert.equal(encodeUrl("aZ09-._~ !*'()ü€"), 'aZ09-._~%20%21%2A%27%28%29%C3%BC%E2%82%AC');
});

test('lda-dupes: Dovecot\'s layout, per user, expiry, damaged file, stale lock', async (t) => {
  const home = tempDir(t, 'dupes');
  const id = duplicateId('h', '<1@x.example>', false);
  const now = Date.UTC(2026, 0, 1);
  await markDuplicates(home, 'john@example.org', [{ id, expires: now / 1000 + 60 }], now);
  const b = readFileSync(join(home, DUPES_DB));
  // version 2, then stamp, id size 16, user size, id, user
  assert.equal(b.readUInt32LE(0), 2);
  assert.equal(b.readUInt32LE(4), now / 1000 + 60);
  assert.equal(b.readUInt32LE(8), 16);
  assert.equal(b.readUInt32LE(12), 'john@example.org'.length);
  assert.deepEqual(b.subarray(16, 32), id);
  assert.equal(b.subarray(32).toString(), 'john@example.org');
  assert.equal(await duplicateExists(home, 'john@example.org', id, now), true);
  assert.equal(await duplicateExists(home, 'jane@example.org', id, now), false);
  assert.equal(await duplicateExists(home, 'john@example.org', duplicateId('h', '<1@x.example>', true), now), false);
  assert.equal(await duplicateExists(home, 'john@example.org', id, now + 61_000), false, 'expired');

  // a damaged file reads as empty and is replaced by a valid one
  writeFileSync(join(home, DUPES_DB), Buffer.from([2, 0, 0, 0, 1, 2, 3]));
  assert.equal(await duplicateExists(home, 'john@example.org', id, now), false);
  // a lock left behind by a dead process is taken over once stale (10 s)
  writeFileSync(join(home, `${DUPES_DB}.lock`), '');
  const old = new Date(Date.now() - 60_000);
  utimesSync(join(home, `${DUPES_DB}.lock`), old, old);
  await markDuplicates(home, 'john@example.org', [{ id, expires: now / 1000 + 60 }], now);
  assert.equal(await duplicateExists(home, 'john@example.org', id, now), true);
});

test('spamtest strlen and text status types; an unconfigured or misconfigured test is "0"', async () => {
  const msg = parseMessage(Buffer.from('X-Spam-Level: *****\r\nX-Virus: infected\r\nX-Bad: **+\r\n\r\nx\r\n'));
  const strlen = { sieve_spamtest_status_type: 'strlen', sieve_spamtest_status_header: 'X-Spam-Level', sieve_spamtest_max_value: '10' };
  assert.equal(await spamVirusValue(strlen, 'spamtest', false, msg), '5');
  assert.equal(await spamVirusValue(strlen, 'spamtest', true, msg), '50');
  assert.equal(await spamVirusValue({ ...strlen, sieve_spamtest_status_header: 'X-Bad' }, 'spamtest', false, msg), '0');
  const text = { sieve_virustest_status_type: 'text', sieve_virustest_status_header: 'X-Virus', sieve_virustest_text_value5: 'infected' };
  assert.equal(await spamVirusValue(text, 'virustest', false, msg), '5');
  assert.equal(await spamVirusValue({}, 'spamtest', false, msg), '0');
  const warned: string[] = [];
  assert.equal(await spamVirusValue({ ...strlen, sieve_spamtest_max_header: 'X-Max' }, 'spamtest', false, msg, (m) => warned.push(m)), '0');
  assert.deepEqual(warned, ['spamtest: sieve_spamtest_max_header and sieve_spamtest_max_value cannot both be configured; extension not configured, tests will always match against "0"']);
});
