/**
 * Sieve redirect and vacation are sent (issue #7 item 6), through
 * `sendmail_path` (a recording fake sendmail) and through `submission_host`
 * (a small SMTP sink). The expected argv, envelope and header layout are
 * those Pigeonhole 0.5.19 produced for the same script via dovecot-lda and
 * the same recording sendmail: redirect `-i -f <sender> -- <target>` with
 * X-Sieve + X-Sieve-Redirected-From prepended and no Return-Path; vacation
 * `-i -f <> -- <sender>`, Auto-Submitted, no second reply within :days.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';
import { transcript } from '../helpers/line-transcript.js';
import { smtpSink } from '../helpers/smtp-sink.js';

const SCRIPT = 'require ["vacation", "copy"];\nredirect :copy "other@example.net";\nvacation :days 3 :subject "Away" "I am away.";\n';
const VACATION_HEADERS = ['X-Sieve', 'Message-ID', 'Date', 'From', 'To', 'Subject', 'In-Reply-To', 'References', 'Auto-Submitted', 'Precedence', 'X-Auto-Response-Suppress', 'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding'];

const message = (id: string) => `From: Alice <alice@example.net>\r\nTo: john@example.org\r\nSubject: hi there\r\nMessage-ID: <${id}@example.net>\r\n\r\nhello\r\n`;

async function deliver(port: number, rcpt: string, id: string): Promise<string[]> {
  return transcript({ port }, [
    { send: 'LHLO test\r\n' }, { send: 'MAIL FROM:<alice@example.net>\r\n' }, { send: `RCPT TO:<${rcpt}>\r\n` }, { send: 'DATA\r\n' },
    { send: message(id) + '.\r\n' }, { send: 'QUIT\r\n' },
  ]);
}

const headerNames = (m: string) => m.split(/\r?\n\r?\n/)[0].split(/\r?\n/).filter((l) => !/^\s/.test(l)).map((l) => l.slice(0, l.indexOf(':')));

async function sealmail(t: import('node:test').TestContext, lmtpPort: number, sending: string, script = SCRIPT) {
  const { uid, gid } = mailIds();
  return startSealmail(t, {
    extraConf: `protocols = imap lmtp\n${sending}\nprotocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\nservice lmtp {\n  inet_listener lmtp {\n    port = ${lmtpPort}\n  }\n}\n`,
    beforeStart: (dir) => {
      const home = join(dir, 'home', 'john@example.org');
      mkdirSync(home, { recursive: true });
      writeFileSync(join(home, '.dovecot.sieve'), script);
      if (process.getuid?.() === 0) for (const p of [home, join(home, '.dovecot.sieve')]) chownSync(p, uid, gid);
    },
  });
}

test('Sieve redirect and vacation go out through sendmail_path as Pigeonhole sends them; one vacation reply per :days', async (t) => {
  const lmtpPort = await freePort();
  const outDir = join(process.env.TMPDIR ?? '/tmp', `sieve-send-${process.pid}`);
  mkdirSync(outDir, { recursive: true });
  chmodSync(outDir, 0o777);
  t.after(() => rmSync(outDir, { recursive: true, force: true }));
  const fake = join(outDir, 'sendmail');
  writeFileSync(fake, `#!/bin/sh\nn=$(date +%s%N)\nprintf '%s\\n' "$@" > ${outDir}/out.$n.args\ncat > ${outDir}/out.$n.msg\n`, { mode: 0o755 });
  const srv = await sealmail(t, lmtpPort, `sendmail_path = ${fake}`);
  const r1 = await deliver(lmtpPort, 'john@example.org', 'm1');
  assert.ok(r1.some((l) => /^S: 250 2\.0\.0 <john@example\.org> \S+ Saved$/.test(l)), r1.join('\n') + srv.output());
  const sent = () => readdirSync(outDir).filter((f) => f.endsWith('.args')).sort().map((f) => ({
    args: readFileSync(join(outDir, f), 'utf8').trim().split('\n'), msg: readFileSync(join(outDir, f.replace(/\.args$/, '.msg')), 'latin1'),
  }));
  let out = sent();
  assert.equal(out.length, 2, srv.output());
  const redirect = out.find((o) => o.args.includes('other@example.net'))!;
  const vacation = out.find((o) => o.args.includes('alice@example.net') && o.args.includes('<>'))!;
  assert.deepEqual(redirect.args, ['-i', '-f', 'alice@example.net', '--', 'other@example.net']);
  assert.match(redirect.msg, /^X-Sieve: .*\r\nX-Sieve-Redirected-From: john@example\.org\r\n/);
  assert.doesNotMatch(redirect.msg, /^Return-Path:/m);
  assert.match(redirect.msg, /\r\nMessage-ID: <m1@example\.net>\r\n\r\nhello\r\n$/);
  assert.deepEqual(vacation.args, ['-i', '-f', '<>', '--', 'alice@example.net']);
  assert.deepEqual(headerNames(vacation.msg), VACATION_HEADERS);
  for (const h of ['From: <john@example.org>', 'To: Alice <alice@example.net>', 'Subject: Away', 'In-Reply-To: <m1@example.net>', 'References: <m1@example.net>', 'Auto-Submitted: auto-replied (vacation)', 'Precedence: bulk', 'X-Auto-Response-Suppress: All'])
    assert.ok(vacation.msg.includes(`\r\n${h}\r\n`), `${h} in\n${vacation.msg}`);
  assert.match(vacation.msg, /\r\n\r\nI am away\.\r\n$/);

  // a second message from the same sender within :days: redirected again, no second vacation reply
  await deliver(lmtpPort, 'john@example.org', 'm2');
  out = sent();
  assert.equal(out.length, 3, srv.output());
  assert.equal(out.filter((o) => o.args.includes('<>')).length, 1);
  assert.match(srv.output(), /discarded duplicate vacation response to <alice@example\.net>/);
  // :copy kept both in INBOX
  const inbox = join(srv.home('john@example.org'), 'Maildir', 'new');
  assert.equal(readdirSync(inbox).length, 2);
});

test('Sieve redirect through submission_host (SMTP); without :copy nothing is stored; a failing sendmail keeps the message', async (t) => {
  const { port: sinkPort, got, waitFor } = await smtpSink(t);
  const lmtpPort = await freePort();
  const srv = await sealmail(t, lmtpPort, `submission_host = 127.0.0.1:${sinkPort}`, 'redirect "other@example.net";\n');
  const r = await deliver(lmtpPort, 'john@example.org', 'm3');
  assert.ok(r.some((l) => /^S: 250 2\.0\.0 <john@example\.org> \S+ Saved$/.test(l)), r.join('\n'));
  await waitFor(1);
  assert.equal(got.length, 1, srv.output());
  assert.equal(got[0].from, 'alice@example.net');
  assert.deepEqual(got[0].rcpts, ['other@example.net']);
  assert.match(got[0].data, /^X-Sieve: .*\r\nX-Sieve-Redirected-From: john@example\.org\r\n/);
  assert.match(got[0].data, /Message-ID: <m3@example\.net>\r\n\r\nhello\r\n$/);
  const newDir = join(srv.home('john@example.org'), 'Maildir', 'new');
  assert.equal(existsSync(newDir) ? readdirSync(newDir).length : 0, 0, 'a redirect without :copy stores nothing');
  await srv.stop();

  // sendmail that fails: the redirect is logged as failed and the message kept
  const lmtp2 = await freePort();
  const srv2 = await sealmail(t, lmtp2, 'sendmail_path = /bin/false', 'redirect "other@example.net";\n');
  const r2 = await deliver(lmtp2, 'john@example.org', 'm4');
  assert.ok(r2.some((l) => /^S: 250 2\.0\.0 <john@example\.org> \S+ Saved$/.test(l)), r2.join('\n'));
  assert.match(srv2.output(), /failed to redirect message to <other@example\.net>/);
  assert.equal(readdirSync(join(srv2.home('john@example.org'), 'Maildir', 'new')).length, 1);
});

test('editheader: a redirect sends the header as the script edited it (RFC 5293), Return-Path still left out', async (t) => {
  const lmtpPort = await freePort();
  const outDir = join(process.env.TMPDIR ?? '/tmp', `sieve-send-eh-${process.pid}`);
  mkdirSync(outDir, { recursive: true });
  chmodSync(outDir, 0o777);
  t.after(() => rmSync(outDir, { recursive: true, force: true }));
  const fake = join(outDir, 'sendmail');
  writeFileSync(fake, `#!/bin/sh\nn=$(date +%s%N)\nprintf '%s\\n' "$@" > ${outDir}/out.$n.args\ncat > ${outDir}/out.$n.msg\n`, { mode: 0o755 });
  const script = 'require ["editheader"];\naddheader "X-Edited" "yes";\ndeleteheader "Subject";\nredirect "other@example.net";\n';
  const srv = await sealmail(t, lmtpPort, `sendmail_path = ${fake}\nplugin {\n  sieve_extensions = +editheader\n}`, script);
  const r1 = await deliver(lmtpPort, 'john@example.org', 'e1');
  assert.ok(r1.some((l) => /^S: 250 2\.0\.0 <john@example\.org> \S+ Saved$/.test(l)), r1.join('\n') + srv.output());
  const msgs = readdirSync(outDir).filter((f) => f.endsWith('.msg')).map((f) => readFileSync(join(outDir, f), 'latin1'));
  assert.equal(msgs.length, 1, srv.output());
  assert.match(msgs[0], /^X-Sieve: .*\r\nX-Sieve-Redirected-From: john@example\.org\r\nX-Edited: yes\r\n/);
  assert.doesNotMatch(msgs[0], /^(Return-Path|Subject):/m);
  assert.match(msgs[0], /\r\nMessage-ID: <e1@example\.net>\r\n\r\nhello\r\n$/);
});
