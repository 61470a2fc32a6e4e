/**
 * A one-user SQL passdb and userdb (table `u`: email, password; the key
 * password is the login's `%w`, as ISPmail's mail-crypt setup passes it) for
 * the Sealmail test server of startSealmail (sealmail-server.ts), with or
 * without mail_uid (the root master takes uid/gid from the userdb). `kind`
 * puts the table in a SQLite file or a private MariaDB/PostgreSQL
 * (databases.ts), so the same test runs on each user database.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startDb, type DbKind } from './databases.js';

export interface SqlUser {
  /** Run SQL on the user database (the hash update of an admin panel). */
  exec(sql: string): Promise<void>;
}

/**
 * Writes the user table and `dovecot-sql.conf.ext` under `dir`. SQLite: the
 * file `users.sqlite` gets `dbMode` (the auth process of the root master
 * reads it as default_internal_user); a server is stopped after the test.
 */
export async function writeSqlUser(t: TestContext, kind: DbKind, dir: string, user: string, hash: string, ids: { uid: number; gid: number }, dbMode: number): Promise<SqlUser> {
  let connect: string;
  let exec: (sql: string) => Promise<void>;
  const table = `CREATE TABLE u (email VARCHAR(255), password VARCHAR(255)); INSERT INTO u VALUES ('${user}', '${hash}');`;
  if (kind === 'sqlite') {
    connect = join(dir, 'users.sqlite');
    exec = async (sql) => {
      const r = spawnSync('sqlite3', [connect, sql], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    };
    await exec(table);
    chmodSync(connect, dbMode);
  } else {
    const db = await startDb(kind, dir);
    t.after(() => db.stop());
    await db.exec(table);
    connect = `"${db.connect}"`;
    exec = (sql) => db.exec(sql);
  }
  writeFileSync(join(dir, 'dovecot-sql.conf.ext'), `driver = ${kind}
connect = ${connect}
default_pass_scheme = SHA512-CRYPT
password_query = SELECT email AS user, password, '%w' AS userdb_mail_crypt_private_password FROM u WHERE email = '%u'
user_query = SELECT '${dir}/home/%u' AS home, ${ids.uid} AS uid, ${ids.gid} AS gid FROM u WHERE email = '%u'
`, { mode: 0o644 });
  return { exec };
}

/** The test tree's config with that SQL file as passdb (its SQLEXT placeholder) and userdb; `rootMaster`: without mail_uid/mail_gid. */
export function useSqlUserdb(text: string, dir: string, rootMaster: boolean): string {
  const out = text.replace('SQLEXT', join(dir, 'dovecot-sql.conf.ext'))
    .replace(/userdb \{\n  driver = static\n  args = [^\n]*\n\}/, `userdb {\n  driver = sql\n  args = ${join(dir, 'dovecot-sql.conf.ext')}\n}`);
  return rootMaster ? out.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, '') : out;
}
