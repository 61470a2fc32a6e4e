/**
 * End to end with the real Postfix, Sealmail in Dovecot's place (issue #7
 * item 5): SMTP AUTH is checked through Sealmail's auth socket in Postfix's
 * private/ dir, Postfix delivers over LMTP to Sealmail's private/dovecot-lmtp,
 * the message arrives encrypted (mail-crypt, public key only) and an IMAP
 * IDLE session sees it at once; a spam-flagged message lands in Junk through
 * ISPmail's sieve_after script; an unknown recipient is refused by LMTP.
 * Over quota: Postfix's check_policy_service asks Sealmail's quota-status
 * and refuses a full mailbox at RCPT; a message that doesn't fit is refused
 * by LMTP after DATA with Dovecot's 552 5.2.2 text and bounced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { setupPostfix } from '../helpers/postfix.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { sendMail } from '../helpers/smtp.js';
import { mailIds } from '../helpers/dovecot.js';

/** ISPmail's Postfix sockets (10-master.conf) in the private Postfix's queue. */
const postfixSockets = (privateDir: string) => `service lmtp {
  unix_listener ${privateDir}/dovecot-lmtp {
    mode = 0600
    user = postfix
    group = postfix
  }
}
service auth {
  unix_listener ${privateDir}/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
`;

test('Postfix → Sealmail: SMTP AUTH via private/auth, LMTP to private/dovecot-lmtp, encrypted delivery, IDLE, spam to Junk', async (t) => {
  const smtpPort = await freePort();
  const pf = setupPostfix(t, { smtpPort, mailboxes: ['john@example.org', 'nobody-here@example.org'] });
  if (!pf) return;
  const srv = await startSealmail(t, {
    passdb: `passdb {\n  driver = static\n  args = password=summersun userdb_mail_crypt_private_password=%w\n}`,
    extraConf: `protocols = imap lmtp
auth_mechanisms = plain login
mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
protocol lmtp {
  mail_plugins = $mail_plugins sieve
}
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
  sieve_after = SIEVE_FILE
}
${postfixSockets(pf.privateDir)}`.replace('SIEVE_FILE', join(pf.dir, 'spam-to-folder.sieve')),
    beforeStart: (dir) => writeFileSync(join(pf.dir, 'spam-to-folder.sieve'), 'require ["fileinto"];\nif header :contains "X-Spam" "Yes" {\n  fileinto "Junk";\n  stop;\n}\n'),
  });
  // the first login makes john's key pair (his password unlocks it)
  const imap = new ImapFlow({ host: '127.0.0.1', port: srv.imapsPort, secure: true, auth: { user: 'john@example.org', pass: 'summersun' }, logger: false, tls: { rejectUnauthorized: false } });
  await imap.connect();
  await imap.mailboxCreate('Junk');
  await imap.mailboxOpen('INBOX');
  const arrived = new Promise<number>((resolve) => imap.on('exists', (d: { count: number }) => resolve(d.count)));
  const idling = imap.idle().catch(() => undefined);

  const bad = await sendMail(smtpPort, { from: 'john@example.org', to: ['john@example.org'], data: 'Subject: x\n\nx\n', auth: { user: 'john@example.org', pass: 'wrong' } });
  assert.equal(bad.lastCode, 535, bad.replies.join('\n'));
  const ok = await sendMail(smtpPort, {
    from: 'john@example.org', to: ['john@example.org'],
    data: 'From: john@example.org\nTo: john@example.org\nSubject: e2e Marker-4242\n\nhello through postfix\n',
    auth: { user: 'john@example.org', pass: 'summersun' },
  });
  assert.ok(ok.ok, ok.replies.join('\n'));
  const count = await Promise.race([arrived, new Promise<number>((_, rej) => setTimeout(() => rej(new Error(`not delivered in 30 s; maillog:\n${pf.maillog()}\nsealmail:\n${srv.output()}`)), 30_000))]);
  assert.equal(count, 1);
  await imap.logout().catch(() => undefined);
  await idling;

  const maildir = join(srv.home('john@example.org'), 'Maildir');
  // the IDLE session (read-write) has moved it from new/ to cur/ already
  const files = [...readdirSync(join(maildir, 'new')).map((f) => join(maildir, 'new', f)), ...readdirSync(join(maildir, 'cur')).map((f) => join(maildir, 'cur', f))];
  assert.equal(files.length, 1);
  const stored = readFileSync(files[0]);
  assert.ok(stored.subarray(0, 7).equals(Buffer.from('CRYPTED')), 'delivered encrypted with the public key');
  assert.ok(!stored.includes('Marker-4242'));

  // spam goes to Junk (sieve_after), read back over IMAP
  const spam = await sendMail(smtpPort, { from: 'john@example.org', to: ['john@example.org'], data: 'Subject: cheap pills\nX-Spam: Yes\n\nbuy\n', auth: { user: 'john@example.org', pass: 'summersun' } });
  assert.ok(spam.ok, spam.replies.join('\n'));
  const c2 = new ImapFlow({ host: '127.0.0.1', port: srv.imapsPort, secure: true, auth: { user: 'john@example.org', pass: 'summersun' }, logger: false, tls: { rejectUnauthorized: false } });
  await c2.connect();
  let junk = 0;
  for (let i = 0; i < 100 && junk === 0; i++) {
    junk = ((await c2.status('Junk', { messages: true })) as { messages?: number }).messages ?? 0;
    if (!junk) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(junk, 1, `spam not in Junk; maillog:\n${pf.maillog()}`);
  const inbox = (await c2.status('INBOX', { messages: true })) as { messages?: number };
  assert.equal(inbox.messages, 1);
  const lock = await c2.getMailboxLock('INBOX');
  try {
    const m = await c2.fetchOne('1', { source: true });
    assert.ok(m && m.source?.toString().includes('Marker-4242') && /^Return-Path: <john@example\.org>/.test(m.source.toString()));
  } finally { lock.release(); }
  await c2.logout();
  // an address Postfix accepts but the userdb doesn't know: LMTP refuses it (static userdb knows everyone, so check the log line shape only)
  assert.match(pf.maillog(), /status=sent \(250 2\.0\.0 <john@example\.org> \S+ Saved\)/);
});

test('Postfix → Sealmail over quota: quota-status refuses a full mailbox at RCPT, LMTP bounces a message that does not fit with Dovecot\'s 552 5.2.2', async (t) => {
  const smtpPort = await freePort();
  const users = ['john@example.org', 'full@example.org', 'over@example.org'];
  const pf = setupPostfix(t, { smtpPort, mailboxes: users, quotaStatus: true });
  if (!pf) return;
  const { uid, gid } = mailIds();
  let home = '';
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap lmtp
mail_plugins = $mail_plugins quota
plugin {
  quota = maildir:User quota
  quota_status_success = DUNNO
  quota_status_nouser = DUNNO
  quota_status_overquota = "552 5.2.2 Mailbox is full"
}
service quota-status {
  unix_listener ${pf.privateDir}/quota-status {
    user = postfix
  }
}
${postfixSockets(pf.privateDir)}`,
    beforeStart: (dir) => {
      home = join(dir, 'home');
      writeFileSync(join(dir, 'users'), [
        `john@example.org::${uid}:${gid}::${home}/john@example.org::`,
        `full@example.org::${uid}:${gid}::${home}/full@example.org::userdb_quota_rule=*:bytes=200`,
        `over@example.org::${uid}:${gid}::${home}/over@example.org::userdb_quota_rule=*:bytes=200`,
      ].join('\n') + '\n');
      // over@ has 300 bytes in his INBOX already (no maildirsize yet: it is recalculated)
      const cur = join(home, 'over@example.org', 'Maildir', 'cur');
      mkdirSync(cur, { recursive: true });
      writeFileSync(join(cur, '1700000000.M1P1.host,S=300,W=310:2,S'), `Subject: old\n\n${'x'.repeat(285)}\n`);
      for (const p of [join(home, 'over@example.org'), join(home, 'over@example.org', 'Maildir'), cur, join(cur, '1700000000.M1P1.host,S=300,W=310:2,S')]) chownSync(p, uid, gid);
    },
    rewriteConf: (text, dir) => text.replace(/userdb \{\n  driver = static\n  args = [^\n]*\n\}/, `userdb {\n  driver = passwd-file\n  args = ${join(dir, 'users')}\n}`),
  });
  // over quota already: Postfix asks quota-status and refuses at RCPT with quota_status_overquota
  const refused = await sendMail(smtpPort, { from: 'john@example.org', to: ['over@example.org'], data: 'Subject: hi\n\nhello\n' });
  assert.ok(!refused.ok);
  assert.ok(refused.replies.some((r) => /^552 5\.2\.2 <over@example\.org>: Recipient address rejected: Mailbox is full/.test(r)), refused.replies.join('\n'));
  // room left but not for this message: accepted by Postfix, refused by LMTP after DATA, bounced with Dovecot's code
  const big = await sendMail(smtpPort, { from: 'john@example.org', to: ['full@example.org'], data: `Subject: too big\n\n${'y'.repeat(2000)}\n` });
  assert.ok(big.ok, big.replies.join('\n'));
  const want = /to=<full@example\.org>.*status=bounced \(host \S+ said: 552 5\.2\.2 <full@example\.org> Quota exceeded \(mailbox for user is full\) \(in reply to end of DATA command\)\)/;
  for (let i = 0; i < 150 && !want.test(pf.maillog()); i++) await new Promise((r) => setTimeout(r, 200));
  assert.match(pf.maillog(), want, `maillog:\n${pf.maillog()}\nsealmail:\n${srv.output()}`);
  // the bounce reaches the sender, who has no quota; full@ got nothing
  const bounced = /to=<john@example\.org>.*status=sent \(250 2\.0\.0 <john@example\.org> \S+ Saved\)/;
  for (let i = 0; i < 150 && !bounced.test(pf.maillog()); i++) await new Promise((r) => setTimeout(r, 200));
  assert.match(pf.maillog(), bounced);
  assert.deepEqual(readdirSync(join(home, 'full@example.org', 'Maildir', 'new')), []);
});
