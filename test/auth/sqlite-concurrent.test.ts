/**
 * The SQLite passdb's first queries arriving together (50 logins right after
 * a start): every one is answered from the one loaded database. Each used to
 * load the file and close the copy a concurrent query was about to run on,
 * so most failed with "Database closed" (IMAP `NO [UNAVAILABLE]`, LMTP 451).
 * Also after the file changed on disk: the re-load is shared the same way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SqliteDriver } from '../../src/auth/sql/sqlite.js';
import { tempDir } from '../helpers/tmp.js';

function makeDb(path: string, rows: number): void {
  const values = Array.from({ length: rows }, (_, i) => `('u${i}@example.org', '{PLAIN}pw${i}')`).join(',');
  const r = spawnSync('sqlite3', [path, `CREATE TABLE IF NOT EXISTS u (email TEXT, password TEXT); DELETE FROM u; INSERT INTO u VALUES ${values};`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

test('50 concurrent first queries on a fresh SQLite driver all succeed, and again after the file changed', async (t) => {
  const path = join(tempDir(t, 'sqlite-race'), 'users.sqlite');
  makeDb(path, 50);
  const driver = new SqliteDriver(path);
  t.after(() => driver.close());
  const lookups = () => Promise.allSettled(Array.from({ length: 50 }, (_, i) => driver.query(`SELECT password FROM u WHERE email = 'u${i}@example.org'`)));
  const first = await lookups();
  const failed = first.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
  assert.deepEqual(failed, [], 'no first query fails');
  first.forEach((r, i) => assert.deepEqual((r as PromiseFulfilledResult<{ rows: unknown[][] }>).value.rows, [[`{PLAIN}pw${i}`]]));

  makeDb(path, 60); // an admin's change: size and mtime differ, the next lookups re-load together
  const again = await lookups();
  assert.deepEqual(again.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), [], 'no query fails across a re-load');
});
