/**
 * `sealadm auth cache flush` against the real `doveadm auth cache flush` on
 * the same sqlite passdb (ISPmail's shape: passdb sql, userdb static) with
 * auth_cache_size set: the same logins (two users, a wrong password, an
 * unknown user: a negative entry) leave the same entries in both caches, and
 * flushing one user, a user with none, then everything prints the same
 * "N cache entries flushed" with the same exit code; a flushed user is
 * looked up again (a password changed in SQL takes effect at once). Run in
 * both server modes (service pools; the root master, whose cache lives in the
 * auth process). Without a running server both print the connect error and
 * "0 cache entries flushed", exit 0 (doveadm 2.3.19); `auth cache` alone and
 * an unknown flag are exit 64.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { requireTool } from '../helpers/tools.js';
import { tempDir } from '../helpers/tmp.js';

const root = process.getuid?.() === 0;
const CACHE = 'auth_cache_size = 1M\nauth_failure_delay = 0\n';

function sealadm(conf: string, ...args: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

/** The users' table, readable by the auth process's user; the dovecot-sql.conf.ext naming it. */
function sqlFiles(dir: string): string {
  const db = join(dir, 'users.sqlite');
  const r = spawnSync('sqlite3', [db, "CREATE TABLE u (email TEXT, password TEXT); INSERT INTO u VALUES ('alice@example.org', '{PLAIN}apw'), ('bob@example.org', '{PLAIN}bpw');"], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  chmodSync(db, 0o666);
  const ext = join(dir, 'dovecot-sql.conf.ext');
  writeFileSync(ext, `driver = sqlite\nconnect = ${db}\npassword_query = SELECT email AS user, password FROM u WHERE email = '%u'\n`, { mode: 0o644 });
  return ext;
}

const passdb = (ext: string) => `passdb {\n  driver = sql\n  args = ${ext}\n}`;
const LOGINS: [string, string][] = [['alice@example.org', 'apw'], ['bob@example.org', 'bpw'], ['bob@example.org', 'wrong'], ['carol@example.org', 'x']];
const FLUSHES = [['bob@example.org'], ['nobody@example.org'], ['Alice@example.org'], [], []];

test('auth cache flush: doveadm\'s counts on the same logins, in both server modes', { timeout: 300_000 }, async (t) => {
  if (!requireTool(t, 'sqlite3')) return;
  const dvDir = tempDir(t, 'sealmail-authcache-dv');
  chmodSync(dvDir, 0o755);
  const dv = setupDovecot(t, { start: true, protocols: 'imap', passdb: passdb(sqlFiles(dvDir)), extraConf: CACHE });
  if (!dv) return;
  t.after(() => dv.stop());
  // doveadm auth test: the auth process's passdb lookup, what an IMAP login does first
  const want: { stdout: string; status: number | null }[] = [];
  for (const [u, p] of LOGINS) dv.doveadm(['auth', 'test', u, p]);
  for (const f of FLUSHES) { const r = dv.doveadm(['auth', 'cache', 'flush', ...f]); want.push({ stdout: r.stdout, status: r.status }); }
  assert.deepEqual(want.map((w) => w.stdout), ['1 cache entries flushed\n', '0 cache entries flushed\n', '0 cache entries flushed\n', '2 cache entries flushed\n', '0 cache entries flushed\n'], 'what Dovecot does');

  const modes = [
    { name: 'service pools', rewrite: (text: string) => text },
    ...(root ? [{ name: 'root master', rewrite: (text: string) => text.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, '') }] : []),
  ];
  for (const mode of modes) {
    let ext = '';
    const srv = await startSealmail(t, {
      extraConf: `${CACHE}service imap-login {\n  process_min_avail = 2\n}\n`,
      passdb: passdb('SQLEXT'),
      beforeStart: (dir) => { ext = sqlFiles(dir); },
      rewriteConf: (text) => mode.rewrite(text.replace('SQLEXT', ext)),
    });
    // each login on a new connection: with two login processes both caches fill
    for (const [u, p] of LOGINS) {
      const c = await ImapLine.open(srv.imapPort);
      await c.cmd('a', `LOGIN ${u} ${p}`);
      c.close();
    }
    const got = FLUSHES.map((f) => { const r = sealadm(srv.conf, 'auth', 'cache', 'flush', ...f); return { stdout: r.stdout, status: r.status }; });
    assert.deepEqual(got, want, `${mode.name}: the same counts and exit codes as doveadm`);

    // a flushed entry is looked up again: a password changed in SQL counts at once
    const c = await ImapLine.open(srv.imapPort);
    assert.match(await c.cmd('a', 'LOGIN alice@example.org apw'), /^a OK/m);
    c.close();
    assert.equal(spawnSync('sqlite3', [join(srv.dir, 'users.sqlite'), "UPDATE u SET password = '{PLAIN}new' WHERE email = 'alice@example.org'"]).status, 0);
    assert.equal(sealadm(srv.conf, 'auth', 'cache', 'flush', 'alice@example.org').stdout, '1 cache entries flushed\n');
    const d = await ImapLine.open(srv.imapPort);
    assert.match(await d.cmd('b', 'LOGIN alice@example.org new'), /^b OK/m, `${mode.name}: the new password after the flush`);
    d.close();
    await srv.stop();

    // the server gone: doveadm 2.3.19's connect error, then a count of 0 and exit 0
    const down = sealadm(srv.conf, 'auth', 'cache', 'flush');
    // (the socket file may outlive a master that had dropped root: then the connection is refused)
    assert.deepEqual({ ...down, stderr: down.stderr.replace('Connection refused', 'No such file or directory') }, { stdout: '0 cache entries flushed\n', stderr: `Error: auth-master: auth cache flush: connect(${join(srv.dir, 'base', 'sealmail-admin')}) failed: No such file or directory\n`, status: 0 });
  }

  // no server at all on doveadm's side too (its auth-master socket is absent under another base_dir)
  const gone = dv.doveadm(['auth', 'cache', 'flush', '-a', join(dvDir, 'nothing')]);
  const ours = sealadm(dv.conf, 'auth', 'cache', 'flush', '-a', join(dvDir, 'nothing'));
  assert.deepEqual(ours, { stdout: gone.stdout, stderr: gone.stderr, status: gone.status });
  // usage: the group's list and exit 64; an unknown flag, exit 64
  for (const args of [['auth', 'cache'], ['auth', 'cache', 'flush', '-x']]) {
    assert.equal(sealadm(dv.conf, ...args).status, dv.doveadm(args).status, args.join(' '));
  }
  assert.match(sealadm(dv.conf, 'auth', 'cache').stderr, /^ {2}cache flush \[-a <master socket path>\] \[<user> \[\.\.\.\]\]$/m);
});
