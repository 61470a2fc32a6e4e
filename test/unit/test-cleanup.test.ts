/**
 * The test helpers leave no process behind (test/helpers/children.ts): a
 * test that throws after starting Sealmail (with IMAP workers) and a private
 * Dovecot, and a test process stopped with SIGTERM in the middle of a test
 * (what node --test's --test-timeout does to a file, without after hooks),
 * each end with every server pid gone, checked in /proc; and a Sealmail
 * that never reports ready (the lmtp-diff hang: its pipes kept the test
 * process alive for minutes) is killed and the test process ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { distRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { groupMembers, spawnOwned } from '../helpers/children.js';
import { dovecotMissing } from '../helpers/dovecot.js';

const helper = (name: string) => pathToFileURL(join(distRoot, 'test', 'helpers', name)).href;

/** A test file that starts both servers, writes their pids to `pidsFile`, then fails or hangs. */
const script = (pidsFile: string, end: 'throw' | 'hang') => `
import { test } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { startSealmail } from '${helper('sealmail-server.js')}';
import { setupDovecot } from '${helper('dovecot.js')}';
import { groupMembers } from '${helper('children.js')}';
test('starts servers, then ${end === 'throw' ? 'fails' : 'hangs'}', async (t) => {
  const dv = setupDovecot(t, { start: true, protocols: 'imap' });
  const srv = await startSealmail(t, { extraConf: 'service imap-login {\\n  process_min_avail = 2\\n}\\n' });
  const master = Number(readFileSync(dv.dir + '/base/master.pid', 'utf8'));
  const pids = [...groupMembers(srv.pid), ...groupMembers(master)];
  writeFileSync(${JSON.stringify(pidsFile)}, JSON.stringify({ pids, dirs: [dv.dir, srv.dir] }));
  ${end === 'throw' ? "throw new Error('failing on purpose');" : 'await new Promise(() => {});'}
});
`;

const alive = (pid: number) => { try { return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return false; } };

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runInner(t: import('node:test').TestContext, end: 'throw' | 'hang'): Promise<void> {
  if (dovecotMissing()) { t.skip(dovecotMissing()!); return; }
  const dir = tempDir(t, 'cleanup');
  const file = join(dir, 'inner.test.mjs');
  const pidsFile = join(dir, 'pids.json');
  writeFileSync(file, script(pidsFile, end));
  // the inner test process is ours: whatever happens here, it goes too
  const inner: ChildProcess = spawnOwned(t, process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  inner.stdout!.on('data', (d) => (out += d));
  inner.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => inner.once('exit', (code) => r(code)));
  await until('the inner test to start its servers', () => existsSync(pidsFile) || inner.exitCode !== null, 90_000).catch((e) => { throw new Error(`${(e as Error).message}\n${out}`); });
  assert.ok(existsSync(pidsFile), `the inner test wrote no pids:\n${out}`);
  const { pids, dirs } = JSON.parse(readFileSync(pidsFile, 'utf8')) as { pids: number[]; dirs: string[] };
  assert.ok(pids.length >= 4, `Sealmail master, 2 workers and Dovecot's processes: ${pids}`);
  if (end === 'hang') inner.kill('SIGTERM'); // as node --test's --test-timeout stops a file
  const code = await exited;
  assert.notEqual(code, 0, `the inner test failed:\n${out}`);
  await until('every server process to be gone', () => !pids.some(alive), 15_000)
    .catch(() => { throw new Error(`still running: ${pids.filter(alive).map((p) => `${p} ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`).join('; ')}\n${out}`); });
  for (const d of dirs) assert.ok(!existsSync(d), `${d} removed after its processes`);
  assert.deepEqual(pids.flatMap((p) => groupMembers(p)), []);
}

test('a Sealmail that never gets ready is killed and its test process ends', async (t) => {
  const dir = tempDir(t, 'cleanup');
  const file = join(dir, 'inner.test.mjs');
  // the imaps listener disabled: the helper waits for it in vain and gives up after 10 s
  writeFileSync(file, `
import { test } from 'node:test';
import { startSealmail } from '${helper('sealmail-server.js')}';
test('start fails', async (t) => {
  await startSealmail(t, { startMs: 10_000, rewriteConf: (text) => text.replace(/(inet_listener imaps \\{\\n *port = )\\d+/, (_m, a) => a + '0') });
});
`);
  const mine = () => readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((p) => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir) && alive(Number(p)); } catch { return false; }
  });
  // TMPDIR: the server's files (and so its command line) are under our dir
  const inner = spawnOwned(t, process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: dir } });
  let out = '';
  inner.stdout!.on('data', (d) => (out += d));
  inner.stderr!.on('data', (d) => (out += d));
  await until('the Sealmail process to start', () => mine().some((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('main.js')), 30_000);
  await until('the inner test process to end', () => inner.exitCode !== null, 60_000)
    .catch(() => { throw new Error(`the inner test process is still running (its server: ${mine().join(' ')}):\n${out}`); });
  assert.notEqual(inner.exitCode, 0);
  assert.match(out, /sealmail did not start/);
  await until('no process of it left', () => mine().length === 0, 15_000);
});

test('a test that throws after starting Sealmail and Dovecot leaves no process behind', (t) => runInner(t, 'throw'));

test('a test process stopped by SIGTERM mid-test (the runner\'s timeout) leaves no process behind', (t) => runInner(t, 'hang'));
