/**
 * lmtp_rcpt_check_quota in the root master mode (root without mail_uid, uid/gid
 * from the userdb): the LMTP front process cannot read mail, so the "over
 * quota already?" test of RCPT TO is made by the mail process of the
 * recipient's uid. An under-quota recipient is accepted and delivered, one
 * over quota already gets Dovecot's `552 5.2.2 <rcpt> Quota exceeded (mailbox
 * for user is full)` (`452 4.2.2` with quota_full_tempfail) at RCPT — the
 * same replies, line for line, as the mail_uid mode gives (whose RCPT check is
 * compared with Dovecot's lmtp in test/quota/enforce-diff.test.ts). A recipient
 * whose mail cannot be opened (a uid below first_valid_uid) gets lmtp-local.c's
 * `451 4.3.0 <rcpt> Temporary internal error` at RCPT.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { LmtpWire, until } from '../helpers/lmtp-wire.js';
import { freePort } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (the mode is root without mail_uid)';
const OK = 'ok@example.org';
const FULL = 'full@example.org';
/** Root mode: each user's uid (passwd-file userdb); the mail_uid mode serves both as mail_uid. */
const UIDS: Record<string, number> = { [OK]: 65534, [FULL]: 60001 };

const QUOTA_CONF = 'mail_plugins = $mail_plugins quota\nlmtp_rcpt_check_quota = yes\nplugin {\n  quota = maildir:User quota\n  quota_rule = *:storage=2K\n}\n';

/** FULL's Maildir holds a 4 kB message already (the maildir backend counts it: no maildirsize yet). */
function seedFull(dir: string, uid: number): void {
  const home = join(dir, 'home', FULL);
  for (const d of [home, join(home, 'Maildir'), ...['cur', 'new', 'tmp'].map((s) => join(home, 'Maildir', s))]) {
    mkdirSync(d, { recursive: true });
    chownSync(d, uid, uid);
  }
  const file = join(home, 'Maildir', 'cur', '1700000000.M1P1.seed,S=4096:2,S');
  writeFileSync(file, `Subject: big\n\n${'x'.repeat(4096 - 15)}\n`);
  chownSync(file, uid, uid);
}

/** `root`: root without mail_uid, the two uids of UIDS; else the mail_uid mode. */
async function server(t: TestContext, root: boolean, extra = ''): Promise<{ srv: SealmailServer; port: number }> {
  const port = await freePort();
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap lmtp\n${QUOTA_CONF}${extra}service lmtp {\n  inet_listener lmtp {\n    port = ${port}\n    address = 127.0.0.1\n  }\n}\n`,
    beforeStart: (dir) => {
      if (!root) { seedFull(dir, mailIds().uid); return; }
      writeFileSync(join(dir, 'users'), Object.entries(UIDS).map(([u, id]) => `${u}::${id}:${id}::${dir}/home/${u}::\n`).join(''), { mode: 0o644 });
      chmodSync(join(dir, 'home'), 0o777); // each uid makes its own home
      seedFull(dir, UIDS[FULL]);
    },
    rewriteConf: root
      ? (text, dir) => text.replace(/^mail_[ug]id = .*\n/gm, '')
        .replace(/userdb \{\n  driver = static\n  args = [^\n]*\n\}/, `userdb {\n  driver = passwd-file\n  args = ${join(dir, 'users')}\n}`)
      : undefined,
  });
  return { srv, port };
}

/** One transaction: every RCPT's reply, then DATA's replies (one per accepted recipient). */
async function transaction(srv: SealmailServer, port: number, rcpts: string[]): Promise<string[]> {
  const w = new LmtpWire(port);
  try {
    await w.hello();
    await w.send('MAIL FROM:<sender@example.net>\r\n', /^250 .*\r\n/m);
    const out: string[] = [];
    for (const r of rcpts) out.push((await w.send(`RCPT TO:<${r}>\r\n`, /^\d{3} [^\r]*\r\n/m)).trimEnd());
    const accepted = out.filter((l) => l.startsWith('250')).length;
    if (!accepted) return out;
    await w.send('DATA\r\n', /^354 .*\r\n/m);
    const replies = await w.send('Subject: hello\r\n\r\nhello\r\n.\r\n', new RegExp(`^(?:\\d{3} [^\\r]*\\r\\n){${accepted}}`, 'm'));
    return [...out, ...replies.split('\r\n').filter(Boolean).map((l) => l.replace(/^(250 2\.0\.0 <[^>]+>) \S+ Saved$/, '$1 ID Saved'))];
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${srv.output().slice(-3000)}`);
  } finally { w.sock.destroy(); }
}

for (const [name, extra, code] of [
  ['552 5.2.2', '', '552 5.2.2'],
  ['452 4.2.2 (quota_full_tempfail)', 'quota_full_tempfail = yes\n', '452 4.2.2'],
] as const) {
  test(`root without mail_uid: lmtp_rcpt_check_quota refuses an over-quota recipient at RCPT with ${name}, as the mail_uid mode`, { skip }, async (t) => {
    const root = await server(t, true, extra);
    const got = await transaction(root.srv, root.port, [OK, FULL]);
    assert.deepEqual(got, [
      '250 2.1.5 OK',
      `${code} <${FULL}> Quota exceeded (mailbox for user is full)`,
      `250 2.0.0 <${OK}> ID Saved`,
    ], root.srv.output().slice(-3000));
    // the RCPT check opened OK's mail as OK's uid (never as the LMTP process's default_internal_user)
    assert.equal(statSync(join(root.srv.home(OK), 'Maildir')).uid, UIDS[OK]);
    assert.doesNotMatch(root.srv.output(), /lmtp_rcpt_check_quota is not applied/);
    const plain = await server(t, false, extra);
    assert.deepEqual(got, await transaction(plain.srv, plain.port, [OK, FULL]), 'the same replies as the mail_uid mode');
  });
}

test('root without mail_uid: lmtp_rcpt_check_quota, a recipient whose mail cannot be opened gets 451 4.3.0 at RCPT (lmtp-local.c)', { skip }, async (t) => {
  // FULL's uid (60001) is below first_valid_uid: Dovecot's mail_storage_service_next fails in lmtp_local_rcpt_check_quota
  const { srv, port } = await server(t, true, `first_valid_uid = ${UIDS[FULL] + 1}\n`);
  assert.deepEqual(await transaction(srv, port, [FULL, OK]), [
    `451 4.3.0 <${FULL}> Temporary internal error`,
    '250 2.1.5 OK',
    `250 2.0.0 <${OK}> ID Saved`,
  ]);
  await until('the log line', () => srv.output().includes(`Error: Failed to initialize user ${FULL}: Mail access for users with UID ${UIDS[FULL]} not permitted (see first_valid_uid in config file, uid from userdb lookup).`));
  assert.doesNotMatch(srv.output(), /NaN|TypeError|RangeError|ERR_/);
});
