/**
 * The Postfix end-to-end harness proven against the real Dovecot first (the
 * oracle): SMTP AUTH checked over Dovecot's auth socket in Postfix's
 * private/ dir, delivery over LMTP on private/dovecot-lmtp, the message
 * arrives in the Maildir. The same harness runs against Sealmail in
 * postfix-sealmail.test.ts, so a failure there is ours, not the harness's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setupPostfix } from '../helpers/postfix.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { freePort } from '../helpers/databases.js';
import { sendMail } from '../helpers/smtp.js';

test('Postfix → Dovecot: SMTP AUTH via private/auth, delivery via private/dovecot-lmtp', async (t) => {
  const smtpPort = await freePort();
  const pf = setupPostfix(t, { smtpPort, mailboxes: ['john@example.org'] });
  if (!pf) return;
  const dv = setupDovecot(t, {
    start: true,
    protocols: 'imap lmtp',
    passdb: 'passdb {\n  driver = static\n  args = password=summersun\n}',
    extraConf: `auth_mechanisms = plain login
service auth {
  unix_listener ${pf.privateDir}/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
service lmtp {
  unix_listener ${pf.privateDir}/dovecot-lmtp {
    mode = 0600
    user = postfix
    group = postfix
  }
}
`,
  });
  if (!dv) return;
  const bad = await sendMail(smtpPort, { from: 'john@example.org', to: ['john@example.org'], data: 'Subject: x\n\nx\n', auth: { user: 'john@example.org', pass: 'wrong' } });
  assert.equal(bad.lastCode, 535, bad.replies.join('\n'));
  const r = await sendMail(smtpPort, {
    from: 'john@example.org', to: ['john@example.org'],
    data: 'From: john@example.org\nTo: john@example.org\nSubject: e2e marker-7731\n\nhello through postfix\n',
    auth: { user: 'john@example.org', pass: 'summersun' },
  });
  assert.ok(r.ok, r.replies.join('\n'));
  let got = '';
  for (let i = 0; i < 100; i++) {
    got = dv.doveadm(['-f', 'flow', 'fetch', '-u', 'john@example.org', 'hdr.subject', 'all']).stdout;
    if (got.includes('marker-7731')) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.match(got, /marker-7731/, `not delivered; maillog:\n${pf.maillog()}\ndovecot log:\n${dv.log()}`);
});
