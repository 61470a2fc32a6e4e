/**
 * `sealadm password change` run as root on an SQLite passdb that belongs to
 * the mail user: the database file keeps its owner, group and mode (it used
 * to be replaced by a root-owned 0600 file the running server, dropped to
 * the mail uid, could not read: every login failed), and the running
 * Sealmail accepts the new password over IMAP at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { startDb } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';
import { ImapLine } from '../helpers/imap-line.js';
import { sealadmJs } from '../helpers/paths.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { tempDir } from '../helpers/tmp.js';
import { inCI } from '../helpers/tools.js';

const U = 'ann@example.org';

test('password change as root keeps the SQLite file\'s owner, group and mode; the running server logs in with the new password', async (t) => {
  if (process.getuid?.() !== 0) {
    if (inCI) throw new Error('CI=true and not root: this test needs root');
    t.skip('needs root');
    return;
  }
  const { uid, gid } = mailIds();
  const dbDir = tempDir(t, 'sqlite-pw');
  chmodSync(dbDir, 0o755);
  const db = await startDb('sqlite', dbDir);
  const hash = await hashPassword('SHA512-CRYPT', Buffer.from('Old-pw-1'), { user: U });
  await db.exec(`INSERT INTO virtual_domains (name) VALUES ('example.org');
INSERT INTO virtual_users (domain_id, email, password) VALUES (1, '${U}', '${hash}');`);
  // as ISPmail's admin would set it up: readable by the mail user only
  chownSync(db.connect, uid, gid);
  chmodSync(db.connect, 0o640);
  const sqlConf = join(dbDir, 'sql.conf.ext');
  writeFileSync(sqlConf, `driver = sqlite\nconnect = ${db.connect}\ndefault_pass_scheme = SHA512-CRYPT\npassword_query = SELECT email AS user, password FROM virtual_users WHERE email='%u'\n`, { mode: 0o644 });
  const srv = await startSealmail(t, { passdb: `passdb {\n  driver = sql\n  args = ${sqlConf}\n}` });
  const login = async (pw: string): Promise<string> => {
    const c = await ImapLine.open(srv.imapPort);
    try { return await c.cmd('a', `LOGIN ${U} ${pw}`); } finally { c.close(); }
  };
  assert.match(await login('Old-pw-1'), /^a OK /m);

  const r = spawnSync(process.execPath, [sealadmJs, '-c', srv.conf, 'password', 'change', '-u', U], { input: 'Old-pw-1\nNew-pw-2\nNew-pw-2\n', encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const st = statSync(db.connect);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [uid, gid, 0o640], 'owner, group and mode unchanged');
  assert.deepEqual(readdirSync(dirname(db.connect)).filter((f) => f.includes('.tmp.')), [], 'no temp file left');

  assert.match(await login('New-pw-2'), /^a OK /m, srv.output());
  assert.match(await login('Old-pw-1'), /^a NO /m);
});
