/**
 * `sealadm password change` on an ISPmail SQLite userdb with mail-crypt:
 * the process is killed after each step (SEALMAIL_TEST_CRASH_AT) and the
 * user can still log in with exactly one of the two passwords and read all
 * mail; after a crash past the SQL commit the next login finishes the
 * change. Also: wrong old password changes nothing; the recovery code sets
 * a new password without the old one, a wrong code changes nothing.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealadmJs, distRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { startDb } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';
import { hashPassword } from '../../src/auth/schemes/index.js';

const U = 'ann@example.org';
const OLD = 'Old-Pässword-1';
const NEW = 'New-Pässword-2';
const MSGS = ['Subject: one\n\nfirst secret\n', 'Subject: two\n\nsecond secret\n', 'Subject: three\n\nthird secret\n'];

async function setup(t: TestContext) {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const { uid, gid } = mailIds();
  const db = await startDb('sqlite', dir);
  t.after(() => db.stop());
  const hash = await hashPassword('SHA512-CRYPT', Buffer.from(OLD), { user: U });
  await db.exec(`INSERT INTO virtual_domains (name) VALUES ('example.org');
INSERT INTO virtual_users (domain_id, email, password, crypt) VALUES (1, '${U}', '${hash}', 2);`);
  mkdirSync(join(dir, 'home'));
  if (process.getuid?.() === 0) chownSync(join(dir, 'home'), uid, gid);
  writeFileSync(join(dir, 'dovecot-sql.conf.ext'), `driver = sqlite
connect = ${db.connect}
default_pass_scheme = SHA512-CRYPT
password_query = SELECT email AS user, password, '%w' AS userdb_mail_crypt_private_password FROM virtual_users WHERE email='%u'
user_query = SELECT email AS user, '${dir}/home/%u' AS home, ${uid} AS uid, ${gid} AS gid, crypt AS mail_crypt_save_version FROM virtual_users WHERE email='%u'
iterate_query = SELECT email AS user FROM virtual_users
`);
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `mail_location = maildir:~/Maildir
mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_require_encrypted_user_key = yes
}
passdb {
  driver = sql
  args = ${dir}/dovecot-sql.conf.ext
}
userdb {
  driver = sql
  args = ${dir}/dovecot-sql.conf.ext
}
`);
  const S = (args: string[], input?: string, env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { input, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  for (const m of MSGS) {
    const r = S(['-o', `plugin/mail_crypt_private_password=${OLD}`, 'save', '-u', U], m);
    assert.equal(r.status, 0, r.stderr);
  }
  const works = (pw: string) => S(['auth', 'test', U, pw]).status === 0;
  const readsAll = (pw: string) => {
    const r = S(['-o', `plugin/mail_crypt_private_password=${pw}`, '-f', 'flow', 'fetch', '-u', U, 'text', 'all']);
    return r.status === 0 && r.stdout === MSGS.map((m) => `text=${m}\n`).join('');
  };
  const attrs = () => readFileSync(join(dir, 'home', U, 'Maildir', 'dovecot-attributes'), 'utf8');
  const login = (pw: string) => spawnSync(process.execPath, [join(distRoot, 'test', 'cryptkey', 'promote-worker.js'), conf, U, pw, join(dir, 'home', U), JSON.stringify([['mail_crypt_save_version', '2']])],
    { encoding: 'utf8', timeout: 60_000, uid: process.getuid?.() === 0 ? uid : undefined, gid: process.getuid?.() === 0 ? gid : undefined });
  return { dir, S, works, readsAll, attrs, login };
}

for (const step of ['staged', 'sql', 'promoted', '']) {
  test(`password change ${step ? `killed after "${step}"` : 'to completion'}: one password logs in and reads all mail`, async (t) => {
    const { S, works, readsAll, attrs, login } = await setup(t);
    const r = S(['password', 'change', '-u', U], `${OLD}\n${NEW}\n${NEW}\n`, step ? { SEALMAIL_TEST_CRASH_AT: step } : {});
    if (step) assert.equal(r.signal, 'SIGKILL', `killed at ${step}: ${r.stderr}`);
    else { assert.equal(r.status, 0, r.stderr); assert.match(r.stdout, /Password changed for ann@example\.org \(1 mail-crypt key\(s\) re-encrypted\)/); }
    const pw = step === 'staged' ? OLD : NEW;
    const other = pw === OLD ? NEW : OLD;
    assert.ok(works(pw), `${pw === OLD ? 'old' : 'new'} password must authenticate`);
    assert.ok(!works(other), 'exactly one password authenticates');
    assert.ok(readsAll(pw), 'all mail readable with the password that logs in');
    if (step === 'sql') {
      assert.match(attrs(), /pending-privkeys/);
      const l = login(NEW);
      assert.equal(l.status, 0, l.stderr);
      assert.doesNotMatch(attrs(), /pending-privkeys/, 'the login finished the change');
      assert.ok(readsAll(NEW));
    }
    if (step === 'promoted' || step === '') assert.doesNotMatch(attrs(), /pending-privkeys/);
  });
}

test('password change: a wrong old password changes nothing', async (t) => {
  const { S, works, attrs } = await setup(t);
  const before = attrs();
  const r = S(['password', 'change', '-u', U], `wrong\n${NEW}\n${NEW}\n`);
  assert.equal(r.status, 77);
  assert.match(r.stderr, /old password is wrong; nothing changed/);
  assert.equal(attrs(), before);
  assert.ok(works(OLD));
});

test('recovery code: sets a new password without the old one; a wrong code changes nothing', async (t) => {
  const { S, works, readsAll, attrs } = await setup(t);
  const rc = S(['mailbox', 'cryptokey', 'recovery', '-u', U], `${OLD}\n`);
  assert.equal(rc.status, 0, rc.stderr);
  const code = rc.stdout.match(/^([A-Z2-9]{5}(?:-[A-Z2-9]{5}){4})$/m)?.[1];
  assert.ok(code, rc.stdout);
  assert.doesNotMatch(attrs(), new RegExp(code!), 'the code itself is never stored');
  const before = attrs();
  const bad = S(['password', 'change', '-u', U, '--recovery'], `AAAAA-AAAAA-AAAAA-AAAAA-AAAAA\n${NEW}\n${NEW}\n`);
  assert.equal(bad.status, 65, bad.stderr);
  assert.match(bad.stderr, /no recovery copy of the user key opens with this code/);
  assert.equal(attrs(), before);
  const ok = S(['password', 'change', '-u', U, '--recovery'], `${code!.toLowerCase()}\n${NEW}\n${NEW}\n`);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(works(NEW) && !works(OLD));
  assert.ok(readsAll(NEW));
});
