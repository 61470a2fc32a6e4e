/**
 * Where Sealmail's own SQL update query lives. `password_update_query` in
 * dovecot-sql.conf.ext makes Dovecot's auth process die (`Unknown setting`),
 * so a tree carrying it could not be rolled back: Sealmail refuses it there
 * with Dovecot's text and reads `plugin { sealmail_password_update_query }`
 * instead, a section Dovecot leaves alone. Both servers run on the same files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { sealadmJs } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';

const U = 'ann@example.org';

function sealadm(conf: string, args: string[], input?: string) {
  return spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { input, encoding: 'utf8', timeout: 120_000 });
}

/** An SQLite passdb whose schema is not ISPmail's, so no default update query applies. */
function accountsDb(t: import('node:test').TestContext, hash: string): string | null {
  const sqlite = requireTool(t, 'sqlite3');
  if (!sqlite) return null;
  const dir = tempDir(t, 'puq');
  chmodSync(dir, 0o755);
  const db = join(dir, 'accounts.db');
  const r = spawnSync(sqlite, [db, `CREATE TABLE accounts (login TEXT PRIMARY KEY, pw TEXT); INSERT INTO accounts VALUES ('${U}', '${hash}');`]);
  assert.equal(r.status, 0, String(r.stderr));
  chmodSync(db, 0o666);
  return db;
}

function extFile(dir: string, db: string, extra = ''): string {
  chmodSync(dir, 0o755); // Dovecot's auth and sealadm read it as the mail user
  const p = join(dir, 'sql.conf.ext');
  writeFileSync(p, `driver = sqlite\nconnect = ${db}\ndefault_pass_scheme = SHA512-CRYPT\npassword_query = SELECT login AS user, pw AS password FROM accounts WHERE login = '%u'\n${extra}`);
  return p;
}

test('password_update_query in dovecot-sql.conf.ext: Dovecot\'s auth dies on it, Sealmail refuses it with the same text and says where it belongs', async (t) => {
  const db = accountsDb(t, await hashPassword('SHA512-CRYPT', Buffer.from('Old-pw-1'), { user: U }));
  if (!db) return;
  const ext = extFile(tempDir(t, 'puq-ext'), db, "password_update_query = UPDATE accounts SET pw = '%{new_password_hash}' WHERE login = '%u'\n");
  const passdb = `passdb {\n  driver = sql\n  args = ${ext}\n}`;
  const dv = setupDovecot(t, { passdb, start: true, protocols: 'imap' });
  if (!dv) return;
  t.after(() => dv.stop());
  const theirs = dv.doveadm(['auth', 'test', U, 'Old-pw-1']);
  assert.notEqual(theirs.status, 0);
  const want = `Error in configuration file ${ext} line 5: Unknown setting: password_update_query`;
  assert.ok(dv.log().includes(want), `Dovecot's log names the setting:\n${dv.log()}`);

  const ours = sealadm(dv.conf, ['auth', 'test', U, 'Old-pw-1']);
  assert.notEqual(ours.status, 0);
  assert.ok(ours.stderr.includes(want), ours.stderr);
  assert.match(ours.stderr, /plugin \{ sealmail_password_update_query = … \}/);
});

test('plugin { sealmail_password_update_query } changes the hash on a non-ISPmail schema; Dovecot starts on the same tree and accepts the new password', async (t) => {
  const db = accountsDb(t, await hashPassword('SHA512-CRYPT', Buffer.from('Old-pw-1'), { user: U }));
  if (!db) return;
  const ext = extFile(tempDir(t, 'puq-ext'), db);
  const passdb = `passdb {\n  driver = sql\n  args = ${ext}\n}`;
  const extraConf = "plugin {\n  sealmail_password_update_query = UPDATE accounts SET pw = '%{new_password_hash}' WHERE login = '%u'\n}\n";
  const dv = setupDovecot(t, { passdb, extraConf, start: true, protocols: 'imap' });
  if (!dv) return;
  t.after(() => dv.stop());

  const r = sealadm(dv.conf, ['password', 'change', '-u', U], 'Old-pw-1\nNew-pw-2\nNew-pw-2\n');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(sealadm(dv.conf, ['auth', 'test', U, 'New-pw-2']).status, 0);
  assert.notEqual(sealadm(dv.conf, ['auth', 'test', U, 'Old-pw-1']).status, 0);
  // the real Dovecot, running on the very same tree, reads the hash Sealmail wrote
  const theirs = dv.doveadm(['auth', 'test', U, 'New-pw-2']);
  assert.equal(theirs.status, 0, theirs.stdout + theirs.stderr + dv.log());
  assert.match(theirs.stdout, /auth succeeded/);
});
