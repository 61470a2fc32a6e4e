/**
 * A one-user SQLite passdb and userdb (table `u`: email, password; the key
 * password is the login's `%w`, as ISPmail's mail-crypt setup passes it) for
 * the Sealmail test server of startSealmail (sealmail-server.ts), with or
 * without mail_uid (the root master takes uid/gid from the userdb).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes `users.sqlite` and `dovecot-sql.conf.ext` under `dir` (the database file gets `dbMode`); returns the database's path. */
export function writeSqliteUser(dir: string, user: string, hash: string, ids: { uid: number; gid: number }, dbMode: number): string {
  const db = join(dir, 'users.sqlite');
  const r = spawnSync('sqlite3', [db, `CREATE TABLE u (email TEXT, password TEXT); INSERT INTO u VALUES ('${user}', '${hash}');`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  chmodSync(db, dbMode);
  writeFileSync(join(dir, 'dovecot-sql.conf.ext'), `driver = sqlite
connect = ${db}
default_pass_scheme = SHA512-CRYPT
password_query = SELECT email AS user, password, '%w' AS userdb_mail_crypt_private_password FROM u WHERE email = '%u'
user_query = SELECT '${dir}/home/%u' AS home, ${ids.uid} AS uid, ${ids.gid} AS gid FROM u WHERE email = '%u'
`, { mode: 0o644 });
  return db;
}

/** The test tree's config with that SQL file as passdb (its SQLEXT placeholder) and userdb; `rootMaster`: without mail_uid/mail_gid. */
export function useSqlUserdb(text: string, dir: string, rootMaster: boolean): string {
  const out = text.replace('SQLEXT', join(dir, 'dovecot-sql.conf.ext'))
    .replace(/userdb \{\n  driver = static\n  args = [^\n]*\n\}/, `userdb {\n  driver = sql\n  args = ${join(dir, 'dovecot-sql.conf.ext')}\n}`);
  return rootMaster ? out.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, '') : out;
}
