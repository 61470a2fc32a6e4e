/**
 * SQL values escaped by the rules of the server actually connected, as
 * Dovecot's mysql_real_escape_string() / PQescapeStringConn() do: ISPmail's
 * password_query puts the password (%w) and the login (%u) into the SQL
 * text, so an escape the server does not honour (a backslash under MariaDB's
 * NO_BACKSLASH_ESCAPES, a doubled quote alone under PostgreSQL's
 * standard_conforming_strings = off) lets a crafted password end the quoted
 * value and log in without knowing the password. Real MariaDB and
 * PostgreSQL servers in both modes, sqlite, the auth engine and a real
 * Sealmail process answering IMAP AUTHENTICATE PLAIN.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { createSqlDriver } from '../../src/auth/sql/index.js';
import { setLogSink } from '../../src/log/logger.js';
import { removeDir, requireDb, startDb, type DbKind, type StringsMode, type TestDb } from '../helpers/databases.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { tempDir } from '../helpers/tmp.js';
import { ownDaemon } from '../helpers/children.js';
import { sealadmJs } from '../helpers/paths.js';
import { findTool } from '../helpers/tools.js';

const QUERY = "SELECT email AS user, password, '%w' AS userdb_mail_crypt_private_password FROM virtual_users WHERE email='%u'";

/** Passwords that end the quoted value early when the escape is the wrong one for the server's mode, and make the row say nopassword. */
const INJECTIONS = [
  "x' AS a, 1 AS nopassword FROM virtual_users LIMIT 1 -- ",
  "x\\' AS a, 1 AS nopassword FROM virtual_users LIMIT 1 -- ",
  "x\\\\' AS a, 1 AS nopassword FROM virtual_users LIMIT 1 -- ",
  "x'; UPDATE virtual_users SET password = 0 -- ",
];

/** Logins that end the quoted value early. */
const LOGIN_INJECTIONS = [
  "nobody' OR 1=1 LIMIT 1 -- ",
  "nobody\\' OR 1=1 LIMIT 1 -- ",
];

/** Legitimate users with awkward names and passwords, each must log in. */
const AWKWARD: [string, string][] = [
  ['ann@example.org', "it's a \\ \"pass\"; -- DROP TABLE virtual_users"],
  ['bob@example.org', 'ends with a backslash\\'],
  ['cat@example.org', "\\'\\\\''"],
  ["o'brien\\\"x;--@example.org", "p'w\\"],
  ['jörg@example.org', 'pässwörd €😀 ünïcode'],
];

/** A string literal that reads the same in every mode: the bytes in hex. */
function lit(kind: DbKind, s: string): string {
  const hex = Buffer.from(s, 'utf8').toString('hex');
  if (kind === 'mysql') return `CONVERT(X'${hex}' USING utf8mb4)`;
  if (kind === 'pgsql') return `convert_from(decode('${hex}', 'hex'), 'UTF8')`;
  return `CAST(X'${hex}' AS TEXT)`;
}

async function fill(db: TestDb): Promise<void> {
  let sql = "INSERT INTO virtual_domains (name) VALUES ('example.org');\n";
  for (const [user, pw] of AWKWARD) {
    const hash = await hashPassword('SHA512-CRYPT', Buffer.from(pw, 'utf8'));
    sql += `INSERT INTO virtual_users (domain_id, email, password) VALUES (1, ${lit(db.kind, user)}, '${hash}');\n`;
  }
  await db.exec(sql);
}

async function setup(t: TestContext, kind: DbKind, strings: StringsMode): Promise<{ db: TestDb; sqlConf: string } | null> {
  if (!requireDb(t, kind)) return null;
  const dir = tempDir(null, `sqlesc-${kind}`);
  const db = await startDb(kind, dir, { strings });
  t.after(async () => { await db.stop(); removeDir(dir); });
  await fill(db);
  const sqlConf = join(dir, 'sql.conf.ext');
  writeFileSync(sqlConf, `driver = ${kind}\nconnect = "${db.connect}"\ndefault_pass_scheme = SHA512-CRYPT\npassword_query = ${QUERY}\nuser_query = SELECT email AS user FROM virtual_users WHERE email='%u'\n`, { mode: 0o644 });
  // the server really is in that mode: 'a\b' is two characters when the backslash escapes
  const drv = await createSqlDriver(kind, db.connect);
  try {
    const r = await drv.query("SELECT LENGTH('a\\b') AS n");
    if (kind !== 'sqlite') assert.equal(r.rows[0][0], strings === 'backslash' ? '2' : '3', `${kind} is in ${strings} mode`);
  } finally {
    await drv.close();
  }
  return { db, sqlConf };
}

async function engineChecks(t: TestContext, sqlConf: string): Promise<void> {
  const dir = tempDir(t, 'sqlesc-conf');
  writeFileSync(join(dir, 'dovecot.conf'), `auth_username_chars =\npassdb {\n  driver = sql\n  args = ${sqlConf}\n}\nuserdb {\n  driver = sql\n  args = ${sqlConf}\n}\n`);
  const engine = new AuthEngine(await loadConfig(join(dir, 'dovecot.conf')), 'imap');
  t.after(() => engine.close());
  const info = { service: 'imap', rip: '127.0.0.1' };
  for (const pw of INJECTIONS) {
    const r = await engine.authenticate('ann@example.org', pw, info);
    assert.equal(r.result, 'mismatch', `injected password ${JSON.stringify(pw)} gave ${r.result}`);
  }
  for (const login of LOGIN_INJECTIONS) {
    const r = await engine.authenticate(login, 'anything', info);
    assert.equal(r.result, 'unknown', `injected login ${JSON.stringify(login)} gave ${r.result}`);
  }
  for (const [user, pw] of AWKWARD) {
    const ok = await engine.authenticate(user, pw, info);
    assert.equal(ok.result, 'ok', `${user} with ${JSON.stringify(pw)}`);
    assert.equal(ok.user, user);
    // the password came back through the query's '%w' unchanged
    assert.deepEqual(ok.userdbFields, [['mail_crypt_private_password', pw]]);
    assert.equal((await engine.authenticate(user, `${pw}x`, info)).result, 'mismatch');
    assert.equal((await engine.lookupUser(user, info)).result, 'ok', `userdb lookup of ${user}`);
  }
  // a NUL never reaches the database (Dovecot: "Unexpected NUL in auth data" / PLAIN's "invalid input")
  assert.notEqual((await engine.authenticate('ann@example.org', `${AWKWARD[0][1]}\0${INJECTIONS[0]}`, info)).result, 'ok');
  assert.notEqual((await engine.authenticate('ann@example.org\0x', AWKWARD[0][1], info)).result, 'ok');
  // nothing was changed by an injected statement
  assert.equal((await engine.authenticate('bob@example.org', AWKWARD[1][1], info)).result, 'ok');
}

/** AUTHENTICATE PLAIN against a real Sealmail process with this SQL passdb. */
async function imapChecks(t: TestContext, sqlConf: string): Promise<void> {
  const srv = await startSealmail(t, { extraConf: 'auth_username_chars =\n', passdb: `passdb {\n  driver = sql\n  args = ${sqlConf}\n}` });
  const plain = async (user: string, pw: string): Promise<string> => {
    const c = await ImapLine.open(srv.imapPort);
    try {
      return await c.cmd('a', `AUTHENTICATE PLAIN ${Buffer.from(`\0${user}\0${pw}`, 'utf8').toString('base64')}`);
    } finally {
      c.close();
    }
  };
  // each refused attempt is followed by a good login, which ends the IP's auth penalty
  const good = async (i: number) => assert.match(await plain(...AWKWARD[i]), /^a OK /m, `${AWKWARD[i][0]} logs in`);
  await good(0);
  for (const pw of INJECTIONS.slice(0, 3)) {
    assert.match(await plain('ann@example.org', pw), /^a NO \[AUTHENTICATIONFAILED\]/m, `injection ${JSON.stringify(pw)}`);
    await good(3);
  }
  assert.match(await plain(LOGIN_INJECTIONS[0], 'x'), /^a NO \[AUTHENTICATIONFAILED\]/m);
  await good(4);
  assert.match(await plain('ann@example.org', `${AWKWARD[0][1]}\0${INJECTIONS[0]}`), /^a NO /m, 'a NUL in the password');
}

/**
 * The real Dovecot's auth on the same dovecot-sql.conf.ext: `doveadm auth
 * test` and `sealadm auth test` give the same exit code for every injected
 * and every awkward password (passwords without NUL: they travel in argv).
 */
function dovecotChecks(t: TestContext, sqlConf: string): void {
  const found = findTool('doveadm');
  if (!found || !findTool('dovecot')) return; // the differential is extra; the checks above stand alone
  const doveadm: string = found;
  const dir = tempDir(t, 'sqlesc-dovecot');
  chmodSync(dir, 0o755);
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `base_dir = ${dir}/run\nstate_dir = ${dir}/state\nlog_path = ${dir}/dovecot.log\nprotocols = imap\nlisten = 127.0.0.1\nssl = no\nauth_failure_delay = 0\nauth_username_chars =\nservice imap-login {\n  inet_listener imap {\n    port = 0\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\npassdb {\n  driver = sql\n  args = ${sqlConf}\n}\nuserdb {\n  driver = static\n  args = uid=5000 gid=5000 home=/nonexistent/%u\n}\n`, { mode: 0o644 });
  if (spawnSync('dovecot', ['-c', conf], { stdio: 'ignore' }).status !== 0) throw new Error(`dovecot failed to start; see ${dir}/dovecot.log`);
  ownDaemon(t, join(dir, 'run', 'master.pid'));
  const cases: [string, string, number][] = [
    ...INJECTIONS.slice(0, 3).map((pw): [string, string, number] => ['ann@example.org', pw, 77]),
    ...LOGIN_INJECTIONS.map((u): [string, string, number] => [u, 'x', 77]),
    ...AWKWARD.map(([u, pw]): [string, string, number] => [u, pw, 0]),
  ];
  for (const [user, pw, want] of cases) {
    const theirs = spawnSync(doveadm, ['-c', conf, 'auth', 'test', user, pw], { encoding: 'utf8' });
    const ours = spawnSync(process.execPath, [sealadmJs, '-c', conf, 'auth', 'test', user, pw], { encoding: 'utf8' });
    const label = `${user} ${JSON.stringify(pw)}`;
    assert.equal(theirs.status, want, `doveadm: ${label}: ${theirs.stdout}${theirs.stderr}\n${readFileSync(join(dir, 'dovecot.log'), 'utf8').slice(-2000)}`);
    assert.equal(ours.status, want, `sealadm: ${label}: ${ours.stdout}${ours.stderr}`);
  }
}

const MODES: [DbKind, StringsMode][] = [['mysql', 'backslash'], ['mysql', 'standard'], ['pgsql', 'standard'], ['pgsql', 'backslash'], ['sqlite', 'standard']];

for (const [kind, strings] of MODES) {
  test(`${kind} with ${strings} string literals: injected passwords and logins are refused, awkward ones log in`, async (t) => {
    const lines: string[] = [];
    setLogSink((l) => lines.push(l));
    t.after(() => setLogSink(null));
    const s = await setup(t, kind, strings);
    if (!s) return;
    await engineChecks(t, s.sqlConf);
    assert.ok(!lines.some((l) => /Password query failed/.test(l) && !/multiple/.test(l)), `no query broke:\n${lines.filter((l) => /failed/.test(l)).join('\n')}`);
    await imapChecks(t, s.sqlConf);
    dovecotChecks(t, s.sqlConf);
  });
}

/** The statement that switches the server's default to the other mode and ends the passdb's sessions. */
const SWITCH: Partial<Record<DbKind, string>> = {
  mysql: "SET GLOBAL sql_mode = 'STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES'; KILL CONNECTION USER mailserver;",
  pgsql: "ALTER DATABASE mailserver SET standard_conforming_strings = off; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'mailserver';",
};

for (const [kind, from] of [['mysql', 'backslash'], ['pgsql', 'standard']] as [DbKind, StringsMode][]) {
  test(`${kind}: the mode is read again on reconnect after the server's mode changed`, async (t) => {
    const s = await setup(t, kind, from);
    if (!s) return;
    const dir = tempDir(t, 'sqlesc-conf');
    writeFileSync(join(dir, 'dovecot.conf'), `auth_username_chars =\npassdb {\n  driver = sql\n  args = ${s.sqlConf}\n}\n`);
    const engine = new AuthEngine(await loadConfig(join(dir, 'dovecot.conf')), 'imap');
    t.after(() => engine.close());
    const info = { service: 'imap', rip: '127.0.0.1' };
    assert.equal((await engine.authenticate(...AWKWARD[0], info)).result, 'ok');
    await s.db.exec(SWITCH[kind]!);
    // the first lookup may meet a connection the server has just ended (a temporary failure, as in Dovecot)
    let r = await engine.authenticate(...AWKWARD[0], info);
    for (let i = 0; r.result === 'tempfail' && i < 3; i++) r = await engine.authenticate(...AWKWARD[0], info);
    assert.equal(r.result, 'ok', 'legitimate login after the switch');
    for (const pw of INJECTIONS) assert.equal((await engine.authenticate('ann@example.org', pw, info)).result, 'mismatch', `injection ${JSON.stringify(pw)} after the switch`);
    for (const [user, pw] of AWKWARD) assert.equal((await engine.authenticate(user, pw, info)).result, 'ok', `${user} after the switch`);
  });
}
