/**
 * The "Done when": the real `doveadm auth test` / `auth login` / `auth lookup` /
 * `user` (against a private `dovecot` using the same dovecot-sql.conf.ext)
 * and `sealadm` give the same output and exit code on the same rows, on
 * sqlite, MariaDB and PostgreSQL — mixed-case logins, NULL password,
 * nologin with reason, two rows, an unknown scheme, a wrong password, an
 * unknown user, and a database that is down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { sealadmJs } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';
import { killDaemon, onAbort } from '../helpers/children.js';
import { removeDir, requireDb, startDb, type DbKind, type TestDb } from '../helpers/databases.js';

const USER_QUERY: Record<DbKind, string> = {
  sqlite: "SELECT email AS user, '*:bytes=' || quota AS quota_rule, '/var/vmail/%d/%n' AS home, 5000 AS uid, 5000 AS gid, crypt AS mail_crypt_save_version FROM virtual_users WHERE email='%u'",
  mysql: "SELECT email AS user, concat('*:bytes=', quota) AS quota_rule, '/var/vmail/%d/%n' AS home, 5000 AS uid, 5000 AS gid, crypt AS mail_crypt_save_version FROM virtual_users WHERE email='%u'",
  pgsql: "SELECT email AS user, '*:bytes=' || quota AS quota_rule, '/var/vmail/%d/%n' AS home, 5000 AS uid, 5000 AS gid, crypt AS mail_crypt_save_version FROM virtual_users WHERE email='%u'",
};

async function loadRows(db: TestDb): Promise<void> {
  const blf = await hashPassword('BLF-CRYPT', Buffer.from('summersun'));
  const sha = await hashPassword('SHA512-CRYPT', Buffer.from("it's pässword"));
  await db.exec(`
INSERT INTO virtual_domains (name) VALUES ('example.org');
INSERT INTO virtual_users (domain_id, email, password, quota, crypt) VALUES
  (1, 'john@example.org', '${blf}', 0, 0),
  (1, 'Mixed@example.org', '{PLAIN}mixpw', 1048576, 2),
  (1, 'unk@example.org', '{FOO}x', 0, 0),
  (1, 'sha@example.org', '${sha.replace(/'/g, "''")}', 0, 2);
CREATE TABLE test_users (email VARCHAR(100) NOT NULL, password VARCHAR(150), nologin VARCHAR(5), reason VARCHAR(100));
INSERT INTO test_users VALUES ('nullpw@example.org', NULL, NULL, NULL);
INSERT INTO test_users VALUES ('nolog@example.org', '{PLAIN}pw', 'Y', 'account disabled');
INSERT INTO test_users VALUES ('two@example.org', '{PLAIN}a', NULL, NULL);
INSERT INTO test_users VALUES ('two@example.org', '{PLAIN}a', NULL, NULL);
CREATE VIEW auth_users AS
  SELECT email, password, CAST(NULL AS VARCHAR(5)) AS nologin, CAST(NULL AS VARCHAR(100)) AS reason FROM virtual_users
  UNION ALL SELECT email, password, nologin, reason FROM test_users;
`.replace(/CAST\(NULL AS VARCHAR\((\d+)\)\)/g, db.kind === 'mysql' ? 'CAST(NULL AS CHAR($1))' : '$&'));
}

interface Oracle { conf: string; stop(): void }

function startDovecot(dir: string, kind: DbKind, db: TestDb): Oracle {
  const ext = join(dir, 'dovecot-sql.conf.ext');
  writeFileSync(ext, [
    `driver = ${kind}`,
    `connect = "${db.connect}"`,
    'default_pass_scheme = BLF-CRYPT',
    "password_query = SELECT email AS user, password, nologin, reason FROM auth_users WHERE email = '%u'",
    `user_query = ${USER_QUERY[kind]}`,
    'iterate_query = SELECT email AS user FROM virtual_users',
  ].join('\n') + '\n');
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
auth_failure_delay = 0
mail_location = maildir:~/Maildir
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
passdb {
  driver = sql
  args = ${ext}
}
userdb {
  driver = sql
  args = ${ext}
}
`);
  for (const f of [ext, conf]) chmodSync(f, 0o644);
  // The daemon keeps inherited pipes open: give it none, read its log on failure.
  onAbort(() => killDaemon(join(dir, 'run', 'master.pid'))); // the test process stopped before its clean-up (children.ts)
  const r = spawnSync('dovecot', ['-c', conf], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`dovecot failed to start (exit ${r.status}); see ${dir}/dovecot.log`);
  return {
    conf,
    stop() {
      try {
        const pid = Number(readFileSync(join(dir, 'run', 'master.pid'), 'utf8'));
        process.kill(pid, 'SIGTERM');
        // wait until it has really gone: a master still shutting down writes into state/ while we delete it
        for (let i = 0; i < 200; i++) {
          try { process.kill(pid, 0); } catch { break; }
          spawnSync('sleep', ['0.05']);
        }
      } catch { /* already gone */ }
    },
  };
}

function both(doveadm: string, conf: string, args: string[]): { theirs: SpawnSyncReturns<string>; ours: SpawnSyncReturns<string> } {
  const theirs = spawnSync(doveadm, ['-c', conf, ...args], { encoding: 'utf8' });
  const ours = spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { encoding: 'utf8' });
  return { theirs, ours };
}

function assertSameRun(doveadm: string, conf: string, args: string[]): SpawnSyncReturns<string> {
  const { theirs, ours } = both(doveadm, conf, args);
  const label = `${args.join(' ')}`;
  assert.equal(ours.stdout, theirs.stdout, `${label}: stdout`);
  assert.equal(ours.status, theirs.status, `${label}: exit code (doveadm stderr: ${theirs.stderr})`);
  return theirs;
}

const CASES: string[][] = [
  ['auth', 'test', 'john@example.org', 'summersun'],
  ['auth', 'test', 'John@Example.ORG', 'summersun'],
  ['auth', 'test', 'john@example.org', 'wrong'],
  ['auth', 'test', 'nosuch@example.org', 'x'],
  ['auth', 'test', 'Mixed@example.org', 'mixpw'],
  ['auth', 'test', 'sha@example.org', "it's pässword"],
  ['auth', 'test', 'nullpw@example.org', 'anything'],
  ['auth', 'test', 'nolog@example.org', 'pw'],
  ['auth', 'test', 'two@example.org', 'a'],
  ['auth', 'test', 'unk@example.org', 'x'],
  ['auth', 'test', "o'brien@example.org", "x' OR '1'='1"],
  ['auth', 'lookup', 'nosuch@example.org'],
  ['auth', 'login', 'John@Example.ORG', 'summersun'],
  ['auth', 'login', 'Mixed@example.org', 'mixpw'],
  ['auth', 'login', 'nolog@example.org', 'pw'],
  ['auth', 'login', 'john@example.org', 'wrong'],
  ['user', 'john@example.org'],
  ['user', 'nosuch@example.org'],
  ['user', '-f', 'home', 'john@example.org'],
  ['-f', 'flow', 'user', 'sha@example.org'],
  ['user', '*@example.org'],
];

for (const kind of ['sqlite', 'mysql', 'pgsql'] as DbKind[]) {
  test(`doveadm vs sealadm auth/user on ${kind}`, { timeout: 240_000 }, async (t) => {
    const doveadm = requireTool(t, 'doveadm');
    if (!doveadm || !requireTool(t, 'dovecot') || !requireDb(t, kind)) return;
    const dir = mkdtempSync(join(tmpdir(), `authdiff-${kind}-`));
    chmodSync(dir, 0o755);
    const db = await startDb(kind, dir);
    let oracle: Oracle | null = null;
    t.after(async () => {
      oracle?.stop();
      await db.stop();
      if (!process.env.KEEP_TMP) removeDir(dir);
    });
    await loadRows(db);
    oracle = startDovecot(dir, kind, db);
    // A distinct client IP per case keeps Dovecot's per-IP auth penalty out of the timing.
    CASES.forEach((args, i) => {
      const withRip = args[0] === 'auth' ? [args[0], args[1], '-x', `rip=192.0.2.${i + 1}`, ...args.slice(2)] : args;
      assertSameRun(doveadm, oracle!.conf, withRip);
    });

    // The database goes away: a temporary failure for both, never "wrong password".
    if (kind === 'sqlite') writeFileSync(db.connect, 'this is not a database');
    else await db.stop();
    const down = assertSameRun(doveadm, oracle.conf, ['auth', 'test', '-x', 'rip=198.51.100.1', 'john@example.org', 'summersun']);
    assert.match(down.stdout, /auth failed\n/);
    assert.match(down.stdout, /code=temp_fail/);
  });
}
