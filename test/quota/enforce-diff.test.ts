/**
 * Quota enforcement side by side with the real Dovecot 2.3 (quota plugin,
 * maildir backend): the same deliveries over LMTP get the same replies
 * (a message under the limit, one over it refused with 552 5.2.2, a last one
 * let through by quota_grace, then nothing more), the same IMAP APPEND/COPY
 * answers (NO [OVERQUOTA] …), GETQUOTAROOT/GETQUOTA/SETQUOTA, and with
 * lmtp_rcpt_check_quota + quota_full_tempfail + quota_exceeded_message the
 * same 452 4.2.2 at RCPT. The maildirsize both servers keep adds up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { imapScript, lmtpSend, message } from './wire.js';

const QUOTA_CONF = (extra: string) => `disable_plaintext_auth = no
mail_plugins = $mail_plugins quota
protocol imap {
  mail_plugins = $mail_plugins imap_quota
}
plugin {
  quota = maildir:User quota
  quota_rule = *:bytes=3000
  quota_rule2 = Trash:storage=+4K
  quota_grace = 10%%
${extra}}
`;

async function pair(t: import('node:test').TestContext, extra: string, globals = '') {
  const lmtpD = await freePort();
  const imapD = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    extraConf: `${QUOTA_CONF(extra)}${globals}service imap-login {\n  inet_listener imap {\n    port = ${imapD}\n  }\n}\nservice lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${lmtpD}\n  }\n}\n`,
  });
  if (!dv) return null;
  const lmtpS = await freePort();
  const srv = await startSealmail(t, { extraConf: `protocols = imap lmtp\n${QUOTA_CONF(extra)}${globals}service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${lmtpS}\n  }\n}\n` });
  return { dv, srv, lmtpD, imapD, lmtpS, imapS: srv.imapPort };
}

const strip = (r: string[]) => r.map((l) => l.replace(/> \S+ Saved$/, '> ID Saved'));

function maildirsizeSum(path: string): { head: string; bytes: number; count: number } {
  const [head, ...lines] = readFileSync(path, 'utf8').split('\n');
  let bytes = 0;
  let count = 0;
  for (const l of lines) { const m = /^(-?\d+) (-?\d+)$/.exec(l); if (m) { bytes += Number(m[1]); count += Number(m[2]); } }
  return { head, bytes, count };
}

test('LMTP and IMAP over quota: Dovecot\'s replies, grace for the last message', async (t) => {
  const p = await pair(t, '');
  if (!p) return;
  const user = 'ann@example.org';
  const steps: [number, string][] = [[2000, 'first'], [1300, 'too big'], [700, 'grace'], [10, 'over']];
  for (const [size, subject] of steps) {
    const theirs = strip(await lmtpSend(p.lmtpD, [user], message(size, subject)));
    const ours = strip(await lmtpSend(p.lmtpS, [user], message(size, subject)));
    assert.deepEqual(ours, theirs, `delivery of ${size} bytes (${subject})`);
  }
  const last = (r: string[]) => r[r.length - 2];
  assert.match(last(strip(await lmtpSend(p.lmtpS, [user], message(10, 'again')))), /^552 5\.2\.2 <ann@example\.org> Quota exceeded \(mailbox for user is full\)$/);
  // both servers' maildirsize: the limit line and two saved messages
  const d = maildirsizeSum(join(p.dv.home(user), 'Maildir', 'maildirsize'));
  const s = maildirsizeSum(join(p.srv.home(user), 'Maildir', 'maildirsize'));
  assert.equal(s.head, d.head);
  assert.equal(s.count, 2);
  assert.equal(d.count, 2);
  assert.ok(s.bytes > 3000 && s.bytes <= 3300, `grace let the usage pass the limit: ${s.bytes}`);

  const script = [
    'a1 GETQUOTAROOT INBOX',
    'a2 GETQUOTA "User quota"',
    'a3 GETQUOTA ""',
    'a4 SETQUOTA "User quota" (STORAGE 100)',
    'a5 APPEND INBOX {5+}\r\nab\r\n',
    'a5b APPEND INBOX {5}\r\nab\r\n',
    'a6 CREATE Trash',
    'a7 GETQUOTAROOT Trash',
    'a8 SELECT INBOX',
    'a9 COPY 1 Trash',
    'b1 COPY 1:* Trash',
    'b2 APPEND Trash {5+}\r\nab\r\n',
    'b2b APPEND Trash (\\Seen) {4}\r\nab\r\n',
    'b3 MOVE 2 Trash',
    'b4 GETQUOTAROOT',
    'b5 GETQUOTA',
  ];
  const theirs = await imapScript(p.imapD, user, script);
  const ours = await imapScript(p.imapS, user, script);
  assert.deepEqual(ours, theirs);
  assert.ok(theirs.includes('a5 NO [OVERQUOTA] Quota exceeded (mailbox for user is full).'), theirs.join('\n'));
  // a synchronising literal over quota is refused before Dovecot invites it
  const a5 = theirs.indexOf('a5 NO [OVERQUOTA] Quota exceeded (mailbox for user is full).');
  assert.equal(theirs[a5 + 1], 'a5b NO [OVERQUOTA] Quota exceeded (mailbox for user is full).', theirs.join('\n'));
});

test('lmtp_rcpt_check_quota with quota_full_tempfail and quota_exceeded_message: 452 4.2.2 at RCPT as Dovecot', async (t) => {
  const p = await pair(t, '  quota_exceeded_message = Mailbox of %u is full, sorry\n  quota_rule3 = Junk:ignore\n', 'lmtp_rcpt_check_quota = yes\nquota_full_tempfail = yes\n');
  if (!p) return;
  const user = 'bob@example.org';
  const steps: [number, string][] = [[2000, 'one'], [2000, 'two'], [700, 'three'], [10, 'four']];
  for (const [size, subject] of steps) {
    const theirs = strip(await lmtpSend(p.lmtpD, [user, 'carl@example.org'], message(size, subject)));
    const ours = strip(await lmtpSend(p.lmtpS, [user, 'carl@example.org'], message(size, subject)));
    if (process.env.QDEBUG) console.log(p.srv.output());
    assert.deepEqual(ours, theirs, `delivery of ${size} bytes (${subject})`);
  }
  const script = ['a1 CREATE Junk', 'a2 APPEND Junk {5+}\r\nab\r\n', 'a3 APPEND INBOX {5+}\r\nab\r\n', 'a4 GETQUOTAROOT Junk'];
  // our LMTP headers are a little longer than Dovecot's: the used KiB are each server's own
  const used = (home: string) => Math.ceil(maildirsizeSum(join(home, 'Maildir', 'maildirsize')).bytes / 1024);
  const theirs = (await imapScript(p.imapD, user, script)).map((l) => l.replace(`(STORAGE ${used(p.dv.home(user))} 3)`, '(STORAGE USED 3)'));
  const ours = (await imapScript(p.imapS, user, script)).map((l) => l.replace(`(STORAGE ${used(p.srv.home(user))} 3)`, '(STORAGE USED 3)'));
  assert.deepEqual(ours, theirs);
  // the save to the ignored Junk is not in maildirsize (Dovecot leaves it out too)
  assert.equal(maildirsizeSum(join(p.srv.home(user), 'Maildir', 'maildirsize')).count, maildirsizeSum(join(p.dv.home(user), 'Maildir', 'maildirsize')).count);
  assert.ok(theirs.some((l) => l.startsWith('a3 NO [OVERQUOTA] Mailbox of bob@example.org is full, sorry')), theirs.join('\n'));
});

test('quota_max_mail_size at LMTP: a message over it gets Dovecot\'s 451 4.2.0, a smaller one is saved', async (t) => {
  const p = await pair(t, '  quota_max_mail_size = 1k\n');
  if (!p) return;
  const user = 'eve@example.org';
  for (const [size, subject] of [[400, 'fits'], [1500, 'too big'], [300, 'fits again']] as const) {
    const theirs = strip(await lmtpSend(p.lmtpD, [user, 'fay@example.org'], message(size, subject)));
    const ours = strip(await lmtpSend(p.lmtpS, [user, 'fay@example.org'], message(size, subject)));
    assert.deepEqual(ours, theirs, `delivery of ${size} bytes (${subject})`);
    if (size > 1024) assert.ok(theirs.includes('451 4.2.0 <eve@example.org> Mail size is larger than the maximum size allowed by server configuration'), theirs.join('\n'));
  }
  assert.match(p.srv.output(), /lmtp\(eve@example\.org\)<\d+><[^>]+>: Info: msgid=.*: save failed to INBOX: Mail size is larger than the maximum size allowed by server configuration/);
});

test('maildirsize lines as Dovecot writes them: one per APPEND, one per COPY of many, MOVE as copy + expunge, one per EXPUNGE', async (t) => {
  const p = await pair(t, '');
  if (!p) return;
  const user = 'dora@example.org';
  const lit = (n: number) => { const m = message(200 + n * 37, `m${n}`).replace(/\n/g, '\r\n'); return `{${Buffer.byteLength(m)}+}\r\n${m}`; };
  const script = [
    'a1 CREATE Keep',
    `a2 APPEND INBOX ${lit(1)}`,
    `a3 APPEND INBOX ${lit(2)}`,
    `a4 APPEND INBOX ${lit(3)}`,
    'a5 SELECT INBOX',
    'a6 COPY 1:3 Keep',
    'a7 MOVE 2 Keep',
    'a8 STORE 1:* +FLAGS.SILENT (\\Deleted)',
    'a9 EXPUNGE',
  ];
  assert.deepEqual(await imapScript(p.imapS, user, script), await imapScript(p.imapD, user, script));
  const lines = (home: string) => readFileSync(join(home, 'Maildir', 'maildirsize'), 'utf8');
  assert.equal(lines(p.srv.home(user)), lines(p.dv.home(user)));
});
