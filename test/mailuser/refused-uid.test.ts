/**
 * The mail-user service refuses a uid outside first_valid_uid…last_valid_uid
 * for every protocol that opens a mail user, quota-status included (it used
 * to check the quota of such a user): quota-status.c's failed lookup,
 * `Failed to lookup user …` logged and `DEFER_IF_PERMIT Temporary internal
 * error` answered, and the connection goes on. LMTP with lmtp_rcpt_check_quota
 * refuses such a recipient at RCPT as lmtp-local.c does (`451 4.3.0 <rcpt>
 * Temporary internal error`, `Failed to initialize user …` logged).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../helpers/config-text.js';
import { setLogSink } from '../../src/log/logger.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { QuotaStatusSession } from '../../src/quota-status/session.js';
import { checkRecipient } from '../../src/lmtp/delivery.js';
import { memSocket, until } from '../fuzz/mem-socket.js';

/** A tree whose userdb gives uid 1 (below the default first_valid_uid), an AuthEngine for `service`, the log lines. */
async function refusedUser(t: TestContext, extra: string, service: 'quota-status' | 'lmtp') {
  const config = await parseConfigText(`mail_location = maildir:~/Maildir\n${extra}plugin {\n  quota = maildir:User quota\n}\npassdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = uid=1 gid=1000 home=/nonexistent/%u\n}\n`);
  const auth = new AuthEngine(config, service);
  t.after(() => auth.close());
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  t.after(() => setLogSink(null));
  return { config, auth, lines };
}

test('quota-status answers for a user with a uid below first_valid_uid as Dovecot does', async (t) => {
  const { config, auth, lines } = await refusedUser(t, '', 'quota-status');
  const m = memSocket();
  new QuotaStatusSession(m.sock, config, auth);
  const req = 'request=smtpd_access_policy\nrecipient=u@x\n\n';
  m.sock.push(Buffer.from(req + req));
  assert.ok(await until(() => m.text().split('\n\n').length > 2), m.text());
  assert.equal(m.text(), 'action=DEFER_IF_PERMIT Temporary internal error\n\n'.repeat(2));
  assert.ok(lines.some((l) => l.startsWith('quota-status: Error: Failed to lookup user u@x: Mail access for users with UID 1 not permitted (see first_valid_uid in config file, uid from userdb lookup).')), lines.join('\n'));
});

test('lmtp_rcpt_check_quota: a recipient with a uid below first_valid_uid gets 451 at RCPT, as lmtp-local.c', async (t) => {
  const { config, auth, lines } = await refusedUser(t, 'mail_plugins = quota\nlmtp_rcpt_check_quota = yes\n', 'lmtp');
  assert.deepEqual(await checkRecipient(config, auth, 'u@x'), { ok: false, temp: true, text: '451 4.3.0 <u@x> Temporary internal error' });
  assert.ok(lines.some((l) => /^lmtp\(u@x\)(<\d+>)?: Error: Failed to initialize user u@x: Mail access for users with UID 1 not permitted \(see first_valid_uid in config file, uid from userdb lookup\)\.$/.test(l)), lines.join('\n'));
});
