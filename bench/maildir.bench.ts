/**
 * Opening a large Maildir (default 100k messages, MAILDIR_BENCH_N to change):
 * first open without a uidlist (every file gets a UID under the lock),
 * STATUS with the uidlist present, deliveries into it (rate and the longest
 * event-loop stall), and heap growth; beside Dovecot's
 * `doveadm force-resync` / `mailbox status` on a copy of the same Maildir
 * (private dovecot in a temp dir, mail as nobody when run as root).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { MailStore } from '../src/mailstore/store.js';
import { medianMs, type BenchRow } from './harness.js';
import { killDaemon, onAbort } from '../test/helpers/children.js';

const N = Number(process.env.MAILDIR_BENCH_N ?? 100_000);

function makeMaildir(home: string): void {
  const root = join(home, 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(root, d), { recursive: true });
  const body = 'From: a@example.org\nSubject: bench\n\nhello\n';
  for (let i = 0; i < N; i++) {
    const base = `${1700000000 + Math.floor(i / 1000)}.M${i % 1000}P1.bench,S=${body.length},W=${body.length + 4}`;
    writeFileSync(i % 10 === 0 ? join(root, 'new', base) : join(root, 'cur', `${base}:2,S`), body);
  }
}

async function timeMs(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function dovecotTimes(home: string): { resync: string; status: string } {
  const dovecot = spawnSync('which', ['dovecot']).status === 0;
  if (!dovecot) return { resync: 'dovecot not installed', status: 'dovecot not installed' };
  const dir = mkdtempSync(join(tmpdir(), 'sealmail-bench-dovecot-'));
  chmodSync(dir, 0o755);
  const dhome = join(dir, 'home');
  cpSync(home, dhome, { recursive: true, preserveTimestamps: true });
  const root = process.getuid?.() === 0;
  const uid = root ? 65534 : process.getuid!();
  const gid = root ? 65534 : process.getgid!();
  if (root) spawnSync('chown', ['-R', `${uid}:${gid}`, dhome]);
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `base_dir = ${dir}/run\nstate_dir = ${dir}/state\nlog_path = ${dir}/dovecot.log\nprotocols = none\nssl = no\n${root ? 'default_internal_user = root\ndefault_login_user = root\ndefault_internal_group = root\n' : ''}first_valid_uid = ${Math.min(uid, 500)}\nfirst_valid_gid = 0\nmail_uid = ${uid}\nmail_gid = ${gid}\nmail_location = maildir:~/Maildir\nnamespace inbox {\n  inbox = yes\n  separator = .\n}\npassdb {\n  driver = static\n  args = nopassword=y\n}\nuserdb {\n  driver = static\n  args = home=${dhome}\n}\n`);
  // a bench stopped mid-run (Ctrl-C, SIGTERM) kills the daemon's group rather than leave it running
  const unregister = onAbort(() => killDaemon(join(dir, 'run', 'master.pid')));
  spawnSync('dovecot', ['-c', conf], { stdio: 'ignore' });
  try {
    const D = (args: string[]) => execFileSync('doveadm', ['-c', conf, ...args], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 26 });
    let t0 = process.hrtime.bigint();
    D(['force-resync', '-u', 'test', 'INBOX']);
    const resync = Number(process.hrtime.bigint() - t0) / 1e6;
    t0 = process.hrtime.bigint();
    D(['mailbox', 'status', '-u', 'test', 'messages unseen uidnext', 'INBOX']);
    const status = Number(process.hrtime.bigint() - t0) / 1e6;
    return { resync: `${resync.toFixed(0)} ms (doveadm force-resync)`, status: `${status.toFixed(0)} ms (doveadm mailbox status, index warm)` };
  } finally {
    spawnSync('doveadm', ['-c', conf, 'stop'], { stdio: 'ignore' });
    unregister();
    rmSync(dir, { recursive: true, force: true });
  }
}

export default async function maildirBench(): Promise<BenchRow[]> {
  const home = mkdtempSync(join(tmpdir(), 'sealmail-bench-maildir-'));
  try {
    makeMaildir(home);
    const gen = join(home, '..', `${home.split('/').pop()}-pristine`);
    cpSync(home, gen, { recursive: true, preserveTimestamps: true });
    const dv = dovecotTimes(gen);
    rmSync(gen, { recursive: true, force: true });
    const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
    if (global.gc) global.gc();
    const heap0 = process.memoryUsage().heapUsed;
    const cold = await timeMs(async () => { const f = await store.open('INBOX'); await f.sync(); });
    const heap1 = process.memoryUsage().heapUsed;
    const warm = await timeMs(() => store.status('INBOX'));
    // the status cache only trusts folders untouched for 2 s (first open just wrote the uidlist)
    await new Promise((r) => setTimeout(r, 2100));
    await store.status('INBOX');
    const cached = await timeMs(() => store.status('INBOX'));
    // deliveries into the big INBOX as LMTP makes them (4 at a time): the master's event loop serves
    // every other client meanwhile, so how long it is blocked matters as much as the rate
    const DELIVERIES = 200;
    const mail = Buffer.from('From: x@example.org\r\nSubject: delivered\r\n\r\nhello\r\n');
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const delivered = await timeMs(() => Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < DELIVERIES / 4; i++) await (await store.open('INBOX')).deliver(mail);
    })));
    loop.disable();
    // a selected folder's sync (every IMAP command's end): nothing changed, and one flag changed by another handle
    const shared = await store.openShared('INBOX');
    const sel = shared.folder;
    await sel.sync({ moveNew: true });
    const old = new Date(Date.now() - 3_600_000);
    for (const d of ['new', 'cur']) utimesSync(join(home, 'Maildir', d), old, old);
    await sel.sync({ moveNew: true });
    const quiet = await medianMs(20, () => sel.sync({ moveNew: true }));
    const other = await store.open('INBOX');
    await other.sync();
    let flip = 0;
    const oneChange = await medianMs(10, async () => {
      const m = other.messages[flip++ % 100];
      await other.setFlags(m, m.flags.has('\\Flagged') ? [] : ['\\Flagged'], m.keywords);
      await sel.sync({ moveNew: true });
    });
    shared.release();
    return [
      { name: `maildir: first open of ${N} msgs, no uidlist (assign UIDs)`, sealmail: `${cold.toFixed(0)} ms`, dovecot: dv.resync },
      { name: `maildir: STATUS of ${N} msgs after a change (rescan)`, sealmail: `${warm.toFixed(0)} ms`, dovecot: dv.status, note: 'Dovecot figure: warm index, unchanged folder' },
      { name: `maildir: STATUS of ${N} msgs, folder unchanged (status cache)`, sealmail: `${cached.toFixed(1)} ms`, dovecot: dv.status },
      { name: `maildir: ${DELIVERIES} deliveries into ${N} msgs, 4 at a time`, sealmail: `${(DELIVERIES / (delivered / 1000)).toFixed(0)}/s`, note: `longest event-loop stall meanwhile ${(loop.max / 1e6).toFixed(1)} ms` },
      { name: `maildir: sync of a selected ${N}-msg folder, nothing changed`, sealmail: `${quiet.toFixed(2)} ms`, note: 'three stats (new/, cur/, uidlist): Dovecot\'s quick check' },
      { name: `maildir: flag change by another handle + sync of a selected ${N}-msg folder`, sealmail: `${oneChange.toFixed(0)} ms`, note: 'cur/ listed again, unchanged messages kept, uidlist and keywords not re-read' },
      { name: `maildir: heap growth for ${N} msgs`, sealmail: `${((heap1 - heap0) / 1048576).toFixed(1)} MiB`, note: 'run node with --expose-gc for a stable figure' },
    ];
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
