/**
 * Log files after root is dropped (src/log/logger.ts): Dovecot's log process
 * stays root, so a root-owned log_path keeps receiving lines; Sealmail opens
 * the files as root before the drop and hands the descriptors to its IMAP
 * workers. New files are created 0600 (Dovecot's open_log_file()). SIGUSR1
 * (doveadm log reopen) reopens where the mail uid may, and otherwise keeps the
 * old descriptor and says so once on stderr.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { sealadmJs } from '../helpers/paths.js';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { mailIds } from '../helpers/dovecot.js';
import { inCI } from '../helpers/tools.js';

const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

function needRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  if (inCI) throw new Error('CI=true and not root: a root-owned log file needs a root start');
  t.skip('needs root (the CI runs as root)');
  return false;
}

/** A server with two IMAP workers logging to <dir>/log/<name>, in a root-only directory. */
async function start(t: TestContext, name: string, before?: (logDir: string) => void): Promise<{ srv: SealmailServer; log: string }> {
  let log = '';
  const srv = await startSealmail(t, {
    extraConf: 'service imap-login {\n  process_min_avail = 2\n}\n',
    beforeStart: (dir) => {
      log = join(dir, 'log', name);
      mkdirSync(join(dir, 'log'), { mode: 0o755 }); // root's, like /var/log: the mail uid cannot create files here
      before?.(join(dir, 'log'));
    },
    rewriteConf: (text, dir) => `${text}log_path = ${join(dir, 'log', name)}\n`,
    ready: (_out, dir) => /imap: 2 worker processes/.test(read(join(dir, 'log', name))),
  });
  shown = () => `log file ${log}:\n${read(log)}\nstdout/stderr:\n${srv.output()}`;
  return { srv, log };
}

let shown = (): string => '';

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${shown()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One IMAP session in a worker: LOGIN and LOGOUT, logged by that worker. */
async function session(srv: SealmailServer): Promise<void> {
  const c = await ImapLine.open(srv.imapPort, false);
  assert.match(await c.cmd('a', 'LOGIN alice pass'), /a OK /);
  await c.cmd('z', 'LOGOUT');
  c.close();
}

const workerPidsIn = (text: string) => {
  const all = [...text.matchAll(/imap: \d+ worker processes \(([\d ]+)\)/g)];
  return all.length ? all[all.length - 1][1].split(' ').map(Number) : [];
};

test('a root-owned log file keeps receiving the master\'s and the workers\' lines after root is dropped', async (t) => {
  if (!needRoot(t)) return;
  const { srv, log } = await start(t, 'dovecot.log', (d) => writeFileSync(join(d, 'dovecot.log'), '', { mode: 0o600 }));
  assert.equal(statSync(log).uid, 0);
  const pids = workerPidsIn(read(log));
  assert.equal(pids.length, 2);
  await session(srv);
  // with workers the master only hands connections on: every IMAP line is a worker's
  await until('a worker\'s Login line in the log file', () => /: Info: Login: user=<alice>, method=PLAIN/.test(read(log)));
  const text = read(log);
  assert.match(text, /master: Info: Sealmail v[\d.]+ starting up/);
  assert.match(text, /master: Info: listening on 127\.0\.0\.1:/);
  // nothing moved to stderr, and nothing was reported as unwritable
  assert.doesNotMatch(srv.output(), /Login: user=|starting up|Can't/);
});

test('a new log file is created 0600 (Dovecot\'s mode), owned by root', async (t) => {
  if (!needRoot(t)) return;
  const { srv, log } = await start(t, 'new.log');
  const st = statSync(log);
  assert.equal((st.mode & 0o777).toString(8), '600');
  assert.equal(st.uid, 0);
  await session(srv);
  await until('the worker\'s Login line', () => /Login: user=<alice>/.test(read(log)));
});

test('sealadm log reopen / SIGUSR1 reopens the log file where the mail uid may, else keeps writing to the old one and says so once', async (t) => {
  if (!needRoot(t)) return;
  const { uid, gid } = mailIds();
  const { srv, log } = await start(t, 'dovecot.log');
  const rotated = `${log}.1`;

  // logrotate without a root reopen: the new file is the mail uid's, so everyone can reopen it
  renameSync(log, rotated);
  writeFileSync(log, '', { mode: 0o600 });
  chownSync(log, uid, gid);
  // logrotate's postrotate: `doveadm log reopen` (SIGUSR1 to the pid in base_dir/master.pid)
  const r = spawnSync(process.execPath, [sealadmJs, '-c', srv.conf, 'log', 'reopen'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  await until('worker lines in the reopened file', async () => { await session(srv); return /Login: user=<alice>/.test(read(log)); });
  // a master line too: a worker killed with -9 is reported and replaced by the master
  const pids = workerPidsIn(read(rotated));
  process.kill(pids[0], 'SIGKILL');
  await until('the master\'s line in the reopened file', () => read(log).includes(`master: Error: service(imap): child ${pids[0]} killed with signal 9`));
  await until('the replacement worker to be ready', () => { const now = workerPidsIn(read(log)); return now.length === 2 && !now.includes(pids[0]); });

  // a root-owned new file cannot be reopened: lines keep going to the open file, one report on stderr
  renameSync(log, `${log}.2`);
  writeFileSync(log, '', { mode: 0o600 });
  process.kill(srv.pid, 'SIGUSR1');
  await until('the refused reopen reported on stderr', () => /Can't reopen log file .*dovecot\.log: EACCES/.test(srv.output()));
  const before = read(`${log}.2`).length;
  await session(srv);
  await until('lines still written to the file opened before', () => read(`${log}.2`).length > before);
  process.kill(srv.pid, 'SIGUSR1');
  await session(srv);
  assert.equal(read(log), '');
  const reports = srv.output().match(/Can't reopen log file/g) ?? [];
  // the master, the 2 IMAP processes and the auth process (Dovecot's default auth-userdb listener)
  assert.ok(reports.length >= 1 && reports.length <= 4, `reported once per process, got ${reports.length}`);
});
