/**
 * The auth-userdb socket (Dovecot's auth master protocol, what dovecot-lda
 * and doveadm use) side by side with the real Dovecot 2.3 auth: the same
 * SQLite passdb/userdb (ISPmail's queries) on both, the same request
 * scripts, and the raw reply lines compared after normalising only SPID:
 * USER for existing, mixed-case and missing users, PASS, LIST with and
 * without masks, and the requests Dovecot drops the connection for. Then
 * the real `dovecot-lda -d USER` (Dovecot not running) delivers through
 * Sealmail's socket, as ISPmail's quota-warning.sh does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { mailIds, setupDovecot } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort, requireDb, startDb } from '../helpers/databases.js';
import { tempDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';
import { transcript, type Step } from '../helpers/line-transcript.js';

const HELLO: Step = { send: 'VERSION\t1\t0\n', replies: 0 };
const SCRIPTS: Record<string, Step[]> = {
  'USER: existing, mixed case, missing, passdb-only, with extra fields': [
    HELLO,
    { send: 'USER\t1\tjohn@example.org\tservice=lda\n' },
    { send: 'USER\t2\tJohn@Example.ORG\tservice=lmtp\trip=127.0.0.1\n' },
    { send: 'USER\t3\tnosuch@example.org\tservice=lda\n' },
    { send: 'USER\t4\tnolog@example.org\tservice=doveadm\n' },
    { send: 'USER\t5\tMixed@example.org\tservice=lda\n' },
    { send: 'USER\t6\tbad user@example.org\tservice=lda\n' },
  ],
  'PASS: existing, missing, nologin, NULL password': [
    HELLO,
    { send: 'PASS\t1\tjohn@example.org\tservice=doveadm\n' },
    { send: 'PASS\t2\tnosuch@example.org\tservice=doveadm\n' },
    { send: 'PASS\t3\tnolog@example.org\tservice=doveadm\n' },
    { send: 'PASS\t4\tnullpw@example.org\tservice=doveadm\n' },
  ],
  // 2.3.19's auth lists every user whatever the mask (doveadm user '*@x' filters the names itself)
  'LIST: all, with masks': [
    HELLO,
    { send: 'LIST\t1\n' },
    { send: 'LIST\t2\tuser=*@example.org\n' },
    { send: 'LIST\t3\tuser=J*\n' },
    { send: 'LIST\t4\tuser=x*\tservice=doveadm\n' },
    { send: 'LIST\t5\tuser=*@other.org\n' },
  ],
  'USER without service': [HELLO, { send: 'USER\t1\tjohn@example.org\n' }],
  'unknown command': [HELLO, { send: 'CPID\t1\n' }],
  'garbage before VERSION': [{ send: 'USER\t1\tjohn@example.org\tservice=lda\n' }],
  'wrong major version': [{ send: 'VERSION\t2\t0\n' }],
};

const isFinal = (l: string) => !/^(VERSION|SPID|LIST)\t/.test(l);
const norm = (lines: string[]) => lines.map((l) => l.replace(/^S: SPID\t.*/, 'S: SPID\tX'));

async function sqlAuth(t: import('node:test').TestContext, dir: string): Promise<string | null> {
  if (!requireDb(t, 'sqlite')) return null;
  const db = await startDb('sqlite', dir);
  const blf = await hashPassword('BLF-CRYPT', Buffer.from('summersun'));
  await db.exec(`
INSERT INTO virtual_domains (name) VALUES ('example.org');
INSERT INTO virtual_users (domain_id, email, password, quota, crypt) VALUES
  (1, 'john@example.org', '${blf}', 0, 0),
  (1, 'Mixed@example.org', '{PLAIN}mixpw', 1048576, 2);
CREATE TABLE test_users (email VARCHAR(100) NOT NULL, password VARCHAR(150), nologin VARCHAR(5), reason VARCHAR(100));
INSERT INTO test_users VALUES ('nullpw@example.org', NULL, NULL, NULL);
INSERT INTO test_users VALUES ('nolog@example.org', '{PLAIN}pw', 'Y', 'account disabled');
CREATE VIEW auth_users AS
  SELECT email, password, CAST(NULL AS VARCHAR(5)) AS nologin, CAST(NULL AS VARCHAR(100)) AS reason FROM virtual_users
  UNION ALL SELECT email, password, nologin, reason FROM test_users;
`);
  const ext = join(dir, 'dovecot-sql.conf.ext');
  writeFileSync(ext, [
    'driver = sqlite',
    `connect = ${db.connect}`,
    'default_pass_scheme = BLF-CRYPT',
    "password_query = SELECT email AS user, password, nologin, reason FROM auth_users WHERE email = '%u'",
    `user_query = SELECT email AS user, '*:bytes=' || quota AS quota_rule, '${dir}/home/%d/%n' AS home, ${process.getuid?.() === 0 ? 65534 : process.getuid?.()} AS uid, ${process.getuid?.() === 0 ? 65534 : process.getgid?.()} AS gid, crypt AS mail_crypt_save_version FROM virtual_users WHERE email='%u'`,
    'iterate_query = SELECT email AS user FROM virtual_users',
  ].join('\n') + '\n', { mode: 0o644 });
  return ext;
}

test('auth-userdb: USER, PASS and LIST replies equal Dovecot 2.3 auth line by line', async (t) => {
  const dir = tempDir(t, 'userdb-diff');
  chmodSync(dir, 0o755);
  const ext = await sqlAuth(t, dir);
  if (!ext) return;
  const passdb = `passdb {\n  driver = sql\n  args = ${ext}\n}`;
  const userdb = `userdb {\n  driver = sql\n  args = ${ext}\n}`;
  const dv = setupDovecot(t, { start: true, protocols: 'lmtp', passdb, userdb });
  if (!dv) return;
  const srv = await startSealmail(t, { passdb, rewriteConf: (text) => text.replace(/^userdb \{[^}]*\}/m, userdb) });
  for (const [name, steps] of Object.entries(SCRIPTS)) {
    const want = norm(await transcript({ path: join(dv.dir, 'base', 'auth-userdb') }, steps, { isFinal, greeting: 0 }));
    const got = norm(await transcript({ path: join(srv.dir, 'base', 'auth-userdb') }, steps, { isFinal, greeting: 0 }));
    assert.deepEqual(got, want, name);
  }
});

const LDA = '/usr/lib/dovecot/dovecot-lda';
const MSG = 'From: postmaster@example.org\nTo: eve@example.org\nSubject: Quota warning - 95% reached\n\nYour mailbox is almost full. SecretMarkerBody\n';

/** dovecot-lda as the mail user, as quota-warning.sh runs it (the script service's user = vmail). */
function lda(conf: string, user: string, extra: string[] = []): { status: number | null; out: string } {
  const ids = process.getuid?.() === 0 ? mailIds() : {};
  const r = spawnSync(LDA, ['-c', conf, '-d', user, ...extra], { input: MSG, encoding: 'utf8', ...ids, env: {}, timeout: 60_000 });
  return { status: r.status, out: `${r.signal ?? ""} ${r.error?.message ?? ""} ${r.stdout}${r.stderr}` };
}

/** ISPmail's quota-warning.sh, with the test's configuration file (ISPmail's uses /etc/dovecot's). */
const ISPMAIL_SCRIPT = (conf: string) => `#!/bin/sh
PERCENT=$1
USER=$2
cat << EOF | ${LDA} -c ${conf} -d $USER -o "plugin/quota=maildir:User quota:noenforcing"
From: postmaster@example.org
Subject: Quota warning - $PERCENT% reached

Your mailbox can only store a limited amount of emails.
Currently it is $PERCENT% full. If you reach 100% then
new emails cannot be stored. Thanks for your understanding.
EOF
`;

test('dovecot-lda -d USER delivers through Sealmail\'s auth-userdb (Dovecot not running), mail-crypt mail opens in Sealmail; ISPmail\'s quota-warning.sh end to end', async (t) => {
  if (!requireTool(t, LDA)) return;
  const lmtp = await freePort();
  const srv = await startSealmail(t, {
    passdb: 'passdb {\n  driver = static\n  args = password=pass userdb_mail_crypt_private_password=%w\n}',
    extraConf: `protocols = imap lmtp
mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt quota
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
  mail_crypt_require_encrypted_user_key = yes
  quota = maildir:User quota
  quota_rule = *:bytes=10000
  quota_warning = storage=95%% quota-warning 95 %u
  quota_warning2 = storage=80%% quota-warning 80 %u
}
service quota-warning {
  executable = script QUOTA_WARNING_SH
  user = ${process.getuid?.() === 0 ? 'nobody' : process.env.USER}
  unix_listener quota-warning {
    user = ${process.getuid?.() === 0 ? 'nobody' : process.env.USER}
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtp}
  }
}
`,
    // a passwd-file userdb that knows eve only, so that an unknown user gets NOTFOUND
    rewriteConf: (text, dir) => {
      const { uid, gid } = mailIds();
      writeFileSync(join(dir, 'users'), `eve@example.org::${uid}:${gid}::${dir}/home/eve@example.org::\n`, { mode: 0o644 });
      writeFileSync(join(dir, 'quota-warning.sh'), ISPMAIL_SCRIPT(join(dir, 'dovecot.conf')), { mode: 0o755 });
      return text.replace('QUOTA_WARNING_SH', join(dir, 'quota-warning.sh')).replace(/^userdb \{[^}]*\}/m, `userdb {\n  driver = passwd-file\n  args = ${dir}/users\n}`);
    },
  });
  // the user's key is made at the first login (ISPmail's flow); dovecot-lda then needs only the public key
  const { imapScript } = await import('../quota/wire.js');
  await imapScript(srv.imapPort, 'eve@example.org', ['a1 SELECT INBOX']);
  // exactly ISPmail's quota-warning.sh call: quota enforcement off for the notice itself
  const r = lda(srv.conf, 'eve@example.org', ['-o', 'plugin/quota=maildir:User quota:noenforcing']);
  assert.equal(r.status, 0, r.out);
  const maildir = join(srv.home('eve@example.org'), 'Maildir');
  const files = [...readdirSync(join(maildir, 'new')), ...readdirSync(join(maildir, 'cur'))];
  assert.equal(files.length, 1, files.join(' '));
  const first = join(maildir, readdirSync(join(maildir, 'new')).length ? 'new' : 'cur', files[0]);
  assert.ok(readFileSync(first).subarray(0, 7).equals(Buffer.from('CRYPTED')), 'dovecot-lda encrypted it with the public key');
  const got = await imapScript(srv.imapPort, 'eve@example.org', ['a1 SELECT INBOX', 'a2 FETCH 1 (BODY.PEEK[TEXT])']);
  assert.ok(got.some((l) => l.includes('SecretMarkerBody')), got.join('\n'));
  // the whole chain: an LMTP delivery to 90% runs quota-warning.sh, whose dovecot-lda delivers the notice
  const { lmtpSend, message } = await import('../quota/wire.js');
  const r2 = await lmtpSend(lmtp, ['eve@example.org'], message(8500, 'big'));
  assert.match(r2[r2.length - 2], /^250 /, r2.join('\n'));
  const count = () => readdirSync(join(maildir, 'new')).length + readdirSync(join(maildir, 'cur')).length;
  const end = Date.now() + 30_000;
  while (count() < 3 && Date.now() < end) await new Promise((res) => setTimeout(res, 100));
  const subjects = await imapScript(srv.imapPort, 'eve@example.org', ['a1 SELECT INBOX', 'a2 FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])']);
  assert.ok(subjects.includes('Subject: Quota warning - 80% reached'), `${subjects.join('\n')}\n${srv.output()}`);
  // an unknown user: dovecot-lda's own answer from the NOTFOUND reply (EX_NOUSER)
  const unknown = lda(srv.conf, 'nosuch@example.org');
  assert.equal(unknown.status, 67, unknown.out);
});
