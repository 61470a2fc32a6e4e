/**
 * Values from a user's script or a sender that must not turn into SMTP
 * commands, headers or readable records (issue: hostile input), at delivery
 * time where sieve-test cannot show it: a redirect address from a variable
 * with CR/LF fails the script and keeps the mail (Pigeonhole: "final result:
 * failed; resolved with successful implicit keep"); vacation's :from and
 * :subject with CR/LF cannot add a header to the reply; the vacation
 * tracking file holds hashes only, mode 0600, and converts old plaintext
 * entries; the SMTP sender refuses CR/LF/NUL in an address as a last defence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { tempDir } from '../helpers/tmp.js';
import { parseConfigText } from '../helpers/config-text.js';
import { setLogSink } from '../../src/log/logger.js';
import { runSieveForDelivery } from '../../src/sieve/deliver.js';
import { DUPES_FILE, vacationKey } from '../../src/sieve/vacation.js';
import { submitMail } from '../../src/lmtp/submit.js';

const HAM = Buffer.from('From: alice@friends.example\r\nTo: john@example.org\r\nSubject: Hi\r\nMessage-ID: <h1@friends.example>\r\n\r\nhello\r\n');
const ENV = { from: 'alice@friends.example', to: 'john@example.org' };

async function user(t: import('node:test').TestContext, script: string) {
  const dir = tempDir(t, 'sieve-hostile');
  const home = join(dir, 'home');
  mkdirSync(join(home, 'sieve'), { recursive: true });
  writeFileSync(join(home, 'sieve', 's.sieve'), script);
  symlinkSync('sieve/s.sieve', join(home, '.dovecot.sieve'));
  const config = await parseConfigText('plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n');
  const logs: string[] = [];
  setLogSink((l) => logs.push(l));
  t.after(() => setLogSink(null));
  return { home, config, logs, u: { username: 'john@example.org', home, fields: [] as [string, string][] } };
}

test('redirect to a variable holding CR/LF: no redirect, the mail is kept, Pigeonhole\'s error', async (t) => {
  const s = await user(t, 'require "variables";\nset "a" "a@example.net\r\nRCPT TO:<x@y.example>";\nredirect "${a}";\n');
  const o = await runSieveForDelivery(s.config, s.u, HAM, ENV);
  assert.deepEqual(o.actions.map((a) => a.type), ['keep']);
  assert.ok(o.errors.some((e) => e.includes("specified redirect address 'a@example.net??RCPT TO:<x@y.example>' is invalid: address ends in invalid characters")), o.errors.join('\n'));
});

test('vacation :from and :subject with CR/LF cannot add a header to the reply', async (t) => {
  const s = await user(t, 'require ["vacation","variables"];\nset "f" "me@example.org\r\nBcc: x@y.example";\nvacation :from "${f}" :subject "hi\r\nBcc: z@y.example" :addresses ["john@example.org\r\nBcc: q"] "away";\n');
  const o = await runSieveForDelivery(s.config, s.u, HAM, ENV);
  const reply = o.actions.find((a) => a.type === 'vacation')?.reply?.toString('latin1');
  assert.ok(reply, JSON.stringify(o));
  const head = reply.split('\r\n\r\n')[0];
  assert.doesNotMatch(head, /^Bcc:/im);
  assert.match(head, /^From: me@example\.org\r\n\tBcc: x@y\.example$/m); // folded, as rfc2822_header_append does
  // str_sanitize_utf8: control characters as U+FFFD (so the subject is RFC 2047-encoded)
  const subject = /^Subject: =\?utf-8\?b\?(.*)\?=$/m.exec(head);
  assert.equal(Buffer.from(subject![1], 'base64').toString('utf8'), 'hi\ufffd\ufffdBcc: z@y.example');
  assert.ok(s.logs.some((l) => l.includes("specified :from address 'me@example.org??Bcc: x@y.example' is invalid for vacation action")), s.logs.join('\n'));
  assert.ok(s.logs.some((l) => l.includes("specified :addresses item 'john@example.org??Bcc: q' is invalid")), s.logs.join('\n'));
});

test('vacation tracking: hashes only, mode 0600, old plaintext entries converted', async (t) => {
  const s = await user(t, 'require "vacation";\nvacation :handle "h1" "away";\n');
  const path = join(s.home, DUPES_FILE);
  const o1 = await runSieveForDelivery(s.config, s.u, HAM, ENV);
  assert.ok(o1.actions.some((a) => a.type === 'vacation'));
  const text = readFileSync(path, 'utf8');
  assert.doesNotMatch(text, /alice|friends/i);
  assert.deepEqual(Object.keys(JSON.parse(text)), [vacationKey('h1', 'alice@friends.example')]);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  // a file of the earlier format: `handle\0sender` in plain text still suppresses the reply, and is rewritten hashed
  writeFileSync(path, JSON.stringify({ 'h1\0bob@example.net': Date.now() + 86400e3 }), { mode: 0o644 });
  const o2 = await runSieveForDelivery(s.config, s.u, HAM, { ...ENV, from: 'bob@example.net' });
  assert.ok(!o2.actions.some((a) => a.type === 'vacation'), JSON.stringify(o2));
  const o3 = await runSieveForDelivery(s.config, s.u, HAM, { ...ENV, from: 'carol@example.net' });
  assert.ok(o3.actions.some((a) => a.type === 'vacation'));
  const after = readFileSync(path, 'utf8');
  assert.doesNotMatch(after, /bob|carol|example\.net/);
  assert.equal(statSync(path).mode & 0o777, 0o600);
});

test('SMTP submit refuses an address with CR, LF or NUL before connecting', async () => {
  const config = await parseConfigText('submission_host = 127.0.0.1:1\n');
  for (const bad of ['a@example.net\r\nRCPT TO:<x@y.example>', 'a@example.net\nx', 'a@example.net\0']) {
    const r = await submitMail(config, 'john@example.org', [bad], Buffer.from('x\r\n'));
    assert.equal(r.ok, false);
    assert.match((r as { error: string }).error, /contains CR, LF or NUL/);
    const r2 = await submitMail(config, bad, ['john@example.org'], Buffer.from('x\r\n'));
    assert.match((r2 as { error: string }).error, /contains CR, LF or NUL/);
  }
});

test('a sender\'s long runs of blanks or \'<\' in From/To/Cc cost linear time (header trimming, address lists, the vacation reply\'s To)', { timeout: 120_000 }, async (t) => {
  const s = await user(t, 'require "vacation";\nvacation "away";\n');
  const blanks = ' '.repeat(200_000);
  const msg = Buffer.from(`From: A${blanks}x <alice@friends.example${blanks}\r\nTo: john@example.org${blanks}x${blanks}\r\nCc: ${'<'.repeat(100_000)}\r\nX-Pad: a${blanks}b\r\nSubject: Hi\r\n\r\nhello\r\n`);
  const t0 = Date.now();
  const o = await runSieveForDelivery(s.config, s.u, msg, ENV);
  t.diagnostic(`delivery with 200k-blank header runs: ${Date.now() - t0} ms`);
  assert.ok(o.actions.some((a) => a.type === 'keep'));
});

test('a script string with a long run of "${" compiles in linear time (ManageSieve compiles in the master)', async (t) => {
  // compiled in a worker so a quadratic compile is cut at the deadline instead of blocking this test's own timers
  const compileUrl = new URL('../../src/sieve/compile.js', import.meta.url).href;
  const w = new Worker(`
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(compileUrl)}).then(({ compileScript }) => {
      const junk = '\${'.repeat(150000);
      const src = 'require ["variables", "vacation", "regex"];\\nredirect "' + junk + '";\\nvacation :from "' + junk + '" "x";\\nif header :regex "x" "' + junk + '" { keep; }\\n';
      try { compileScript(src, 's'); parentPort.postMessage('compiled'); } catch (e) { parentPort.postMessage(String(e.message).slice(0, 200)); }
    });
  `, { eval: true });
  t.after(() => w.terminate());
  const result = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve('still compiling after 30 s'), 30_000);
    w.on('message', (m: string) => { clearTimeout(timer); resolve(m); });
  });
  assert.match(result, /specified redirect address/);
});
