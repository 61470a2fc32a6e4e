/**
 * A user's catastrophically backtracking Sieve :regex must not stall the
 * server (issue: hostile input). Over real sockets to a Sealmail process:
 * an LMTP delivery to a user whose script has `^(a+)+$`-style and nested
 * repetitions against a 5,000-byte header, and while it is under way a new
 * IMAP connection (handed off by the master) logs in and answers NOOP, and
 * the Postfix auth socket answers an AUTH. With a backtracking matcher the
 * master never came back. The delivery completes: the patterns do not match
 * (as in Pigeonhole), the mail is kept in INBOX, and a matching long pattern
 * still files its copy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';
import { transcript } from '../helpers/line-transcript.js';

const SCRIPT = `require ["regex", "fileinto", "copy", "mailbox"];
if header :regex "Subject" "^(a+)+$" { fileinto "Never1"; }
if header :regex "Subject" "((a*)*|b)*c" { fileinto "Never2"; }
if header :regex "Subject" "^(a|aa|a{1,3})+(a+)+b" { fileinto "Never3"; }
if header :regex "Subject" "(a|aa)+!$" { fileinto :copy :create "Long"; }
`;
const LONG_SUBJECT = 'a'.repeat(5000) + '!';
const DEADLINE = 60_000; // generous for a loaded CI machine; a stalled master never answers at all

test('a backtracking Sieve :regex does not stall LMTP, IMAP hand-off or the auth socket', async (t) => {
  const { uid, gid } = mailIds();
  const lmtpPort = await freePort();
  const authSock = join(process.env.TMPDIR ?? '/tmp', `rx-auth-${process.pid}`);
  t.after(() => rmSync(authSock, { force: true }));
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap lmtp\nauth_mechanisms = plain\nprotocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\n`
      + `service lmtp {\n  inet_listener lmtp {\n    port = ${lmtpPort}\n  }\n}\nservice auth {\n  unix_listener ${authSock} {\n    mode = 0666\n  }\n}\n`,
    beforeStart: (dir) => {
      const home = join(dir, 'home', 'john@example.org');
      mkdirSync(home, { recursive: true });
      writeFileSync(join(home, '.dovecot.sieve'), SCRIPT);
      if (process.getuid?.() === 0) for (const p of [home, join(home, '.dovecot.sieve')]) chownSync(p, uid, gid);
    },
  });

  // the delivery: all of it on the wire before the other clients start
  const msg = `From: alice@example.net\r\nTo: john@example.org\r\nSubject: ${LONG_SUBJECT}\r\nMessage-ID: <rx@example.net>\r\n\r\nhello\r\n.\r\n`;
  const lmtp = net.connect(lmtpPort, '127.0.0.1');
  t.after(() => lmtp.destroy());
  let lmtpIn = '';
  lmtp.on('data', (d) => (lmtpIn += d.toString('latin1')));
  lmtp.on('error', () => undefined);
  const order: string[] = [];
  const delivered = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`LMTP delivery not answered:\n${lmtpIn}\n${srv.output()}`)), DEADLINE);
    lmtp.on('data', () => {
      if (/\r\n250 2\.0\.0 <john@example\.org> \S+ Saved\r\n/.test(lmtpIn)) { clearTimeout(timer); order.push('lmtp'); resolve(); }
      else if (/(^|\n)[45]\d\d /.test(lmtpIn)) { clearTimeout(timer); reject(new Error(lmtpIn)); }
    });
  });
  await new Promise<void>((r) => lmtp.once('connect', () => r()));
  await new Promise<void>((r) => lmtp.write(`LHLO test\r\nMAIL FROM:<alice@example.net>\r\nRCPT TO:<john@example.org>\r\nDATA\r\n${msg}`, () => r()));

  // meanwhile: a new IMAP connection (greeting, LOGIN through the master's auth, NOOP) and an AUTH on the Postfix socket
  const isTagged = (l: string) => /^(\* OK|a\d )/.test(l);
  const imap = transcript({ port: srv.imapPort }, [
    { send: 'a1 LOGIN bob@example.org pass\r\n' }, { send: 'a2 NOOP\r\n' }, { send: 'a3 LOGOUT\r\n' },
  ], { isFinal: isTagged, timeoutMs: DEADLINE }).then((l) => { order.push('imap'); return l; });
  const auth = transcript({ path: authSock }, [
    { send: 'VERSION\t1\t2\nCPID\t4242\n', replies: 0 },
    { send: `AUTH\t1\tPLAIN\tservice=smtp\trip=10.3.0.1\tresp=${Buffer.from('\0bob@example.org\0pass').toString('base64')}\n` },
  ], { isFinal: (l) => /^(OK|FAIL)\t1\b/.test(l), greeting: 0, timeoutMs: DEADLINE }).then((l) => { order.push('auth'); return l; });

  const [imapLines, authLines] = await Promise.all([imap, auth, delivered]);
  assert.ok(imapLines.includes('S: a2 OK NOOP completed.') || imapLines.some((l) => /^S: a2 OK/.test(l)), imapLines.join('\n'));
  assert.ok(authLines.some((l) => /^S: OK\t1\tuser=bob@example\.org/.test(l)), authLines.join('\n'));
  assert.deepEqual([...order].sort(), ['auth', 'imap', 'lmtp']);

  // kept (no pattern but the last matched) and the :copy of the matching one filed
  const md = join(srv.home('john@example.org'), 'Maildir');
  assert.equal(readdirSync(join(md, 'new')).length, 1, srv.output());
  assert.equal(readdirSync(join(md, '.Long', 'new')).length, 1, srv.output());
  for (const never of ['Never1', 'Never2', 'Never3']) assert.throws(() => readdirSync(join(md, `.${never}`)));
});
