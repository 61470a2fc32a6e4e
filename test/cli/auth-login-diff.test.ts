/**
 * `sealadm auth login` against the real `doveadm auth login` on the same
 * passwd-file/static config (the SQL side is in test/auth/auth-diff.test.ts):
 * the passdb half (extra fields, original_user), the userdb half a login
 * finishes with (prefetched userdb_ fields first, an empty field when the
 * userdb has none, auth_mech, auth_user), a master login, a user the userdb
 * does not know, allow_nets, and a nopassword next to a stored password
 * (which Dovecot ignores: the wrong password must fail) — same stdout, same
 * exit code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { mailIds, setupDovecot } from '../helpers/dovecot.js';

test('sealadm auth login = doveadm auth login on passwd-file + static', { timeout: 120_000 }, (t) => {
  const { uid, gid } = mailIds();
  const files = mkdtempSync(join(tmpdir(), 'sealmail-authlogin-'));
  chmodSync(files, 0o755);
  t.after(() => rmSync(files, { recursive: true, force: true }));
  const users = join(files, 'users');
  const homes = join(files, 'userdb');
  const masters = join(files, 'masters');
  writeFileSync(users, [
    `ann@example.org:{PLAIN}secret:${uid}:${gid}::${files}/ann::userdb_quota_rule=*:bytes=1M`,
    'bob@example.org:{PLAIN}bobpw::::::nopassword allow_nets=10.0.0.0/8',
    'carl@example.org:{PLAIN}carlpw::::::',
    'dora@example.org:{PLAIN}dorapw::::::nologin reason=gone',
  ].join('\n') + '\n');
  writeFileSync(homes, [`ann@example.org::${uid}:${gid}::${files}/ann::`, 'bob@example.org:::::::'].join('\n') + '\n');
  writeFileSync(masters, 'admin:{PLAIN}adminpw\n');
  for (const f of [users, homes, masters]) chmodSync(f, 0o644);
  const dv = setupDovecot(t, {
    start: true,
    protocols: 'imap',
    extraConf: 'auth_failure_delay = 0\nauth_master_user_separator = *\n',
    passdb: `passdb {\n  driver = passwd-file\n  master = yes\n  pass = yes\n  args = ${masters}\n}\npassdb {\n  driver = passwd-file\n  args = ${users}\n}`,
    userdb: `userdb {\n  driver = passwd-file\n  args = ${homes}\n}`,
  });
  if (!dv) return;

  const cases: string[][] = [
    ['ann@example.org', 'secret'],
    ['ann@example.org', 'bad'],
    ['Ann@Example.org', 'secret'],
    ['-x', 'rip=10.1.1.1', 'bob@example.org', 'bobpw'],
    ['-x', 'rip=10.1.1.2', 'bob@example.org', 'wrong'],
    ['bob@example.org', 'bobpw'],
    ['carl@example.org', 'carlpw'],
    ['dora@example.org', 'dorapw'],
    ['nobody@example.org', 'pw'],
    ['-M', 'admin', 'ann@example.org', 'adminpw'],
    ['-M', 'admin', 'ann@example.org', 'wrong'],
    ['-M', 'admin', 'nobody@example.org', 'adminpw'],
    ['-x', 'service=imap', 'ann@example.org', 'secret'],
    [],
  ];
  cases.forEach((c, i) => {
    // a distinct client IP per case keeps Dovecot's per-IP auth penalty out of the run
    const args = ['auth', 'login', ...(c.includes('-x') || c.length === 0 ? c : ['-x', `rip=192.0.2.${i + 1}`, ...c])];
    const theirs = dv.doveadm(args);
    const ours = spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { encoding: 'utf8' });
    assert.equal(ours.stdout, theirs.stdout, `${args.join(' ')}: stdout`);
    assert.equal(ours.status, theirs.status, `${args.join(' ')}: exit code (doveadm: ${theirs.stderr}, sealadm: ${ours.stderr})`);
  });
});

