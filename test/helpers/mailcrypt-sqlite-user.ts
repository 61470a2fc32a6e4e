/**
 * An ISPmail SQLite userdb with one mail-crypt user (key under OLD, three
 * messages saved encrypted) and sealadm helpers around it: the setup of the
 * password-change tests (test/cryptkey/password-change.test.ts,
 * password-rekey.test.ts, roundcube-password.test.ts). `kind` puts the same
 * userdb in a private MariaDB or PostgreSQL instead.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { sealadmJs, distRoot } from './paths.js';
import { tempDir } from './tmp.js';
import { startDb, type DbKind } from './databases.js';
import { mailIds } from './dovecot.js';
import { hashPassword } from '../../src/auth/schemes/index.js';

export const U = 'ann@example.org';
export const OLD = 'Old-Pässword-1';
export const NEW = 'New-Pässword-2';
export const MSGS = ['Subject: one\n\nfirst secret\n', 'Subject: two\n\nsecond secret\n', 'Subject: three\n\nthird secret\n'];

export async function setup(t: TestContext, kind: DbKind = 'sqlite') {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const { uid, gid } = mailIds();
  const db = await startDb(kind, dir);
  t.after(() => db.stop());
  const hash = await hashPassword('SHA512-CRYPT', Buffer.from(OLD), { user: U });
  await db.exec(`INSERT INTO virtual_domains (name) VALUES ('example.org');
INSERT INTO virtual_users (domain_id, email, password, crypt) VALUES (1, '${U}', '${hash}', 2);`);
  mkdirSync(join(dir, 'home'));
  if (process.getuid?.() === 0) chownSync(join(dir, 'home'), uid, gid);
  writeFileSync(join(dir, 'dovecot-sql.conf.ext'), `driver = ${kind}
connect = "${db.connect}"
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
  return { dir, db, S, works, readsAll, attrs, login };
}
