/**
 * sealadm loads only what the command it runs needs (issue: one call took
 * 1–3.5 s against doveadm's 0.05 s, most of it importing every command's
 * mail store, sieve, crypt, SQL client and password-hash modules). Checked
 * by what a child process loads (a loader hook), not by timing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { distRoot, repoRoot, sealadmJs } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { mailIds } from '../helpers/dovecot.js';

const trace = join(distRoot, 'test', 'helpers', 'module-trace.js');
const USER = 'alice@example.org';

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const { uid, gid } = mailIds();
  const home = join(dir, 'home');
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(home, 'Maildir', d), { recursive: true });
  writeFileSync(join(home, 'Maildir', 'cur', '1700000000.M1P1.host:2,S'), 'Subject: one\n\nbody\n');
  if (process.getuid?.() === 0) spawnSync('chown', ['-R', `${uid}:${gid}`, home]);
  // {PLAIN}: no hashing needed to set the tree up
  writeFileSync(join(dir, 'passwd'), `${USER}:{PLAIN}secret:${uid}:${gid}::${home}::\n`);
  const base = 'mail_location = maildir:~/Maildir\nnamespace inbox {\n  inbox = yes\n  separator = .\n}\n';
  const block = (driver: string, args: string) => `passdb {\n  driver = ${driver}\n  args = ${args}\n}\nuserdb {\n  driver = ${driver}\n  args = ${args}\n}\n`;
  const pf = join(dir, 'pf.conf');
  writeFileSync(pf, base + block('passwd-file', join(dir, 'passwd')));
  const db = join(dir, 'users.db');
  const r = spawnSync('sqlite3', [db], { input: `${readFileSync(join(repoRoot, 'sql', 'sqlite.sql'), 'utf8')}\nINSERT INTO virtual_domains (name) VALUES ('example.org');\nINSERT INTO virtual_users (domain_id, email, password) VALUES (1, '${USER}', '{PLAIN}secret');\n`, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  writeFileSync(join(dir, 'sql.conf.ext'), `driver = sqlite\nconnect = ${db}\npassword_query = SELECT email AS user, password FROM virtual_users WHERE email='%u'\nuser_query = SELECT '${home}' AS home, ${uid} AS uid, ${gid} AS gid FROM virtual_users WHERE email='%u'\n`);
  const sql = join(dir, 'sql.conf');
  writeFileSync(sql, base + block('sql', join(dir, 'sql.conf.ext')));
  let n = 0;
  /** Run sealadm; returns its result and the modules it loaded (paths below dist/ or node_modules/). */
  const run = (conf: string, args: string[]) => {
    const out = join(dir, `trace-${n++}`);
    writeFileSync(out, '');
    const res = spawnSync(process.execPath, ['--import', trace, sealadmJs, '-c', conf, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, MODULE_TRACE_FILE: out } });
    const loaded = readFileSync(out, 'utf8').split('\n').filter(Boolean)
      .map((u) => u.includes('/node_modules/') ? u.slice(u.lastIndexOf('/node_modules/') + 1) : u.slice(u.indexOf('/dist/') + 6));
    return { ...res, loaded };
  };
  return { pf, sql, run };
}

/** The modules in `loaded` matching any of `prefixes`. */
const matching = (loaded: string[], prefixes: string[]) => loaded.filter((m) => prefixes.some((p) => m.startsWith(p)));

const SQL_CLIENTS = ['node_modules/sql.js/', 'node_modules/mysql2/', 'node_modules/pg/', 'node_modules/pg-'];
const HASHES = ['node_modules/bcryptjs/', 'node_modules/@noble/hashes/'];
const MAIL = ['src/mailstore/', 'src/mailuser/', 'src/crypt/', 'src/sieve/', 'src/quota/'];

test('sealadm user on a passwd-file loads no SQL client, password hash, mail store or crypt module', (t) => {
  const { pf, run } = setup(t);
  const r = run(pf, ['user', '-f', 'home', USER]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\/home\n$/);
  assert.ok(r.loaded.includes('src/cli/commands/user.js'), 'the trace sees sealadm\'s own modules');
  assert.deepEqual(matching(r.loaded, [...SQL_CLIENTS, ...HASHES, ...MAIL]), []);
  // the other commands' files stay unloaded
  assert.deepEqual(r.loaded.filter((m) => m.startsWith('src/cli/commands/')), ['src/cli/commands/index.js', 'src/cli/commands/user.js']);
});

test('sealadm user on SQLite loads sql.js but neither mysql2 nor pg', (t) => {
  const { sql, run } = setup(t);
  const r = run(sql, ['user', '-f', 'uid', USER]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${mailIds().uid}\n`);
  assert.ok(matching(r.loaded, ['node_modules/sql.js/']).length > 0);
  assert.deepEqual(matching(r.loaded, ['node_modules/mysql2/', 'node_modules/pg/', 'node_modules/pg-', ...HASHES, ...MAIL]), []);
});

test('sealadm config loads neither the auth layer nor the mail store', (t) => {
  const { pf, run } = setup(t);
  const r = run(pf, ['config', 'mail_location']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'mail_location = maildir:~/Maildir\n');
  assert.deepEqual(matching(r.loaded, ['src/auth/', ...SQL_CLIENTS, ...HASHES, ...MAIL]), []);
});

test('sealadm mailbox status loads the mail store but no SQL client or password hash', (t) => {
  const { pf, run } = setup(t);
  const r = run(pf, ['mailbox', 'status', '-u', USER, 'messages', 'INBOX']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'INBOX messages=1\n');
  assert.ok(matching(r.loaded, ['src/mailstore/']).length > 0);
  assert.deepEqual(matching(r.loaded, [...SQL_CLIENTS, ...HASHES]), []);
});

test('sealadm auth test still verifies through the hash workers (schemes loaded there)', (t) => {
  const { pf, run } = setup(t);
  const ok = run(pf, ['auth', 'test', USER, 'secret']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^passdb: alice@example\.org auth succeeded/m);
  const bad = run(pf, ['auth', 'test', USER, 'wrong']);
  assert.equal(bad.status, 77, bad.stderr);
});
