/**
 * Sieve at LMTP delivery of a spooled message (src/lmtp/data-spool.ts): the
 * script sees the header (Dovecot's added headers first) and its size, and a
 * `body` test reads the whole message back from the spool, so a word deep in
 * a message past the 128 kB kept in memory is found; a message with no
 * script needing the body is stored byte for byte all the same.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lmtpSieveConfig } from '../helpers/config-text.js';
import { tempDir } from '../helpers/tmp.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { deliver } from '../../src/lmtp/delivery.js';
import { MessageSpool, type SpooledMessage } from '../../src/lmtp/data-spool.js';

async function spooled(message: Buffer, dir: string): Promise<{ msg: SpooledMessage; spool: MessageSpool }> {
  const spool = new MessageSpool(dir, (m) => { throw new Error(m); });
  // written as LMTP's DATA decoder hands it over: a line at a time
  for (let i = 0; i < message.length;) { const j = message.indexOf(0x0a, i); const end = j < 0 ? message.length : j + 1; spool.write(message.subarray(i, end)); i = end; }
  return { msg: await spool.finish(), spool };
}

test('Sieve at delivery: header and size tests on the spooled message, a body test reads it from the spool', async (t) => {
  const dir = tempDir(t, 'lmtp-spool-sieve');
  mkdirSync(join(dir, 'home'));
  mkdirSync(join(dir, 'spool'));
  writeFileSync(join(dir, 'rules.sieve'), `require ["fileinto", "body"];
if body :contains "needle-deep-in-the-body" { fileinto "Deep"; stop; }
if allof (header :is "Subject" "big", size :over 1M) { fileinto "Big"; stop; }
if header :contains "Return-Path" "sender@example.net" { fileinto "Small"; }
`);
  const config = await lmtpSieveConfig(dir, `  sieve_before = ${dir}/rules.sieve
`, `lda_mailbox_autocreate = yes
`);
  const auth = new AuthEngine(config, 'lmtp');
  t.after(() => auth.close());
  const base = { config, auth, user: 'jo@example.org', detail: '', rcpt: 'jo@example.org', mailFrom: 'sender@example.net', heloName: 'mx', rip: '127.0.0.1', sessionId: 'T1', single: true };
  const filler = `${'filler line of a big message\n'.repeat(60_000)}`;
  const cases: [string, Buffer][] = [
    ['Deep', Buffer.from(`Subject: deep\n\n${filler}needle-deep-in-the-body\n`)],
    ['Big', Buffer.from(`Subject: big\n\n${filler}`)],
    ['Small', Buffer.from('Subject: small\n\nhello\n')],
  ];
  for (const [box, message] of cases) {
    const { msg, spool } = await spooled(message, join(dir, 'spool'));
    try {
      assert.deepEqual(await deliver({ ...base, message: msg }), { ok: true });
    } finally { await spool.close(); }
    const folder = join(dir, 'home', 'jo@example.org', 'Maildir', `.${box}`, 'new');
    assert.ok(existsSync(folder), `${box} was not filed into`);
    const files = readdirSync(folder);
    assert.equal(files.length, 1, box);
    const stored = readFileSync(join(folder, files[0]));
    assert.ok(stored.subarray(stored.length - message.length).equals(message), `${box}: stored message differs`);
    assert.match(stored.subarray(0, 100).toString(), /^Return-Path: <sender@example\.net>\nDelivered-To: jo@example\.org\nReceived: /);
  }
  assert.deepEqual(readdirSync(join(dir, 'spool')), []);
});
