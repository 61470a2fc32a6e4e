/**
 * The IMAP server under many users, side by side with Dovecot 2.3 on the
 * same ISPmail-shaped configuration (bench/ispmail-pair.ts: SQLite users,
 * BLF-CRYPT, IMAPS only, quota, uid/gid from the userdb), both started
 * fresh in the same run:
 * - memory per idle IMAPS connection: LOAD_BENCH_CONNS (2,000) users each
 *   logged in, INBOX selected, in IDLE; RSS and PSS (smaps_rollup) summed
 *   over the whole process tree of each server (master and every process
 *   below it), (tree with the sessions − tree at rest) / sessions;
 * - the longest NOOP stall during a login storm: one session sends NOOPs
 *   back to back while LOAD_BENCH_STORM (50) clients connect (TLS), LOGIN,
 *   SELECT INBOX and LOGOUT all at once; max and p99 of the NOOPs that ran
 *   during the storm, LOAD_BENCH_REPEAT (3) storms per server, alternating;
 * - the whole tree at rest (freshly started) and with one user's
 *   LOAD_BENCH_BIG (100,000)-message INBOX selected by 1 and then by 10
 *   sessions (copies of one Maildir cached under the temp dir, see
 *   cachedMaildir), measured first, before the idle sessions.
 * Sealmail as the ISPmail tree runs it (root, no mail_uid: the root master);
 * with LOAD_BENCH_MAIL_UID=1 also with mail_uid set (the supervised pools;
 * +2 minutes). LOAD_BENCH_DOVECOT_LOGIN=security: Dovecot's imap-login as
 * its defaults have it (a process per connection) rather than service_count = 0. Per-process breakdowns go to stderr. About 10 minutes on a
 * loaded 2-core machine, most of it Dovecot forking 2,000 imap processes.
 */
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { BenchRow } from './harness.js';
import { Conn } from './imap-client.js';
import { describeCpu, describeTree, treeCpu, treeMemory, treePids, type TreeMemory } from './process-tree.js';
import { benchUser, makeUserDb, PASSWORD, replaceMaildir, startDovecotSide, startSealmailSide } from './ispmail-pair.js';
import { cachedMaildir } from './imap-server.bench.js';
import { tempDir } from '../test/helpers/tmp.js';

const CONNS = Number(process.env.LOAD_BENCH_CONNS ?? 2000);
const STORM = Number(process.env.LOAD_BENCH_STORM ?? 50);
const REPEAT = Number(process.env.LOAD_BENCH_REPEAT ?? 3);
const WITH_MAIL_UID = process.env.LOAD_BENCH_MAIL_UID === '1';
/** What each storm client does (to find where a stall comes from): `tls` connect and close, `login` without SELECT, `full` (default). */
const STEPS = process.env.LOAD_BENCH_STORM_STEPS ?? 'full';
/** `security`: Dovecot's imap-login in its default mode (a process per connection) instead of the high-performance one. */
const DOVECOT_LOGIN = process.env.LOAD_BENCH_DOVECOT_LOGIN === 'security' ? 'security' : 'performance';
/** Connections being opened at once while the idle sessions are set up. */
const OPENING = 20;
/** Messages of the big INBOX, and the session counts that select it. */
const BIG = Number(process.env.LOAD_BENCH_BIG ?? 100_000);
const BIG_SESSIONS = [1, 10];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`${s}\n`);

/** A logged-in session of user `n` with INBOX selected; throws when the server refuses any step. */
async function session(port: number, n: number | 'probe'): Promise<Conn> {
  const c = await Conn.openTls(port);
  for (const cmd of [`LOGIN ${benchUser(n)} ${PASSWORD}`, 'SELECT INBOX']) {
    await c.cmd(cmd);
    if (!c.last.startsWith('OK')) { c.sock.destroy(); throw new Error(`${benchUser(n)}: ${cmd.split(' ')[0]}: ${c.last}`); }
  }
  return c;
}

/** A logged-in session with nothing selected (LOAD_BENCH_STORM_STEPS=login). */
async function login(port: number, n: number): Promise<Conn> {
  const c = await Conn.openTls(port);
  await c.cmd(`LOGIN ${benchUser(n)} ${PASSWORD}`);
  if (!c.last.startsWith('OK')) { c.sock.destroy(); throw new Error(`${benchUser(n)}: LOGIN: ${c.last}`); }
  return c;
}

/** Tree memory once it stopped moving (two reads 1 s apart within 2 %), at most 10 s. */
async function settledMemory(pid: number): Promise<TreeMemory> {
  let prev = treeMemory(pid);
  for (let i = 0; i < 10; i++) {
    await sleep(1000);
    const m = treeMemory(pid);
    if (Math.abs(m.pssKiB - prev.pssKiB) < 0.02 * prev.pssKiB) return m;
    prev = m;
  }
  return prev;
}

export interface BigFigures { rest: TreeMemory; selected: Map<number, TreeMemory> }

/** The tree at rest, then with `user`'s big INBOX selected by each of BIG_SESSIONS sessions (opened one after another). */
async function bigMailbox(label: string, port: number, masterPid: number, user: number): Promise<BigFigures> {
  const rest = await settledMemory(masterPid);
  log(`${label} at rest: ${rest.processes} processes, RSS ${(rest.rssKiB / 1024).toFixed(1)} MiB, PSS ${(rest.pssKiB / 1024).toFixed(1)} MiB\n${describeTree(rest)}`);
  const selected = new Map<number, TreeMemory>();
  const conns: Conn[] = [];
  try {
    for (const n of BIG_SESSIONS) {
      const t0 = Date.now();
      while (conns.length < n) conns.push(await session(port, user));
      const m = await settledMemory(masterPid);
      log(`${label} with the ${BIG}-message INBOX selected by ${n} sessions (opened in ${((Date.now() - t0) / 1000).toFixed(1)} s): RSS ${(m.rssKiB / 1024).toFixed(1)} MiB, PSS ${(m.pssKiB / 1024).toFixed(1)} MiB\n${describeTree(m)}`);
      selected.set(n, m);
    }
  } finally {
    for (const c of conns) c.sock.destroy();
  }
  return { rest, selected };
}

export interface IdleFigures { rest: TreeMemory; loaded: TreeMemory; rssPer: number; pssPer: number; secs: number }

/** CONNS idle IDLE sessions on a freshly started server; its tree at rest and with them. */
async function idleSessions(label: string, port: number, masterPid: number): Promise<IdleFigures> {
  const rest = await settledMemory(masterPid);
  log(`${label} at rest: ${rest.processes} processes, RSS ${(rest.rssKiB / 1024).toFixed(1)} MiB, PSS ${(rest.pssKiB / 1024).toFixed(1)} MiB\n${describeTree(rest)}`);
  const conns: Conn[] = [];
  const t0 = Date.now();
  try {
    let next = 1;
    let failed = false; // one refused session stops the other openers, and all have stopped before the clean-up below
    const openers = await Promise.allSettled(Array.from({ length: OPENING }, async () => {
      try {
        while (next <= CONNS && !failed) {
          const c = await session(port, next++);
          conns.push(c);
          await c.idle();
        }
      } catch (e) { failed = true; throw e; }
    }));
    for (const o of openers) if (o.status === 'rejected') throw o.reason;
    const secs = (Date.now() - t0) / 1000;
    const loaded = await settledMemory(masterPid);
    const alive = conns.filter((c) => !c.sock.destroyed).length;
    if (alive !== CONNS) throw new Error(`${label}: ${CONNS - alive} of ${CONNS} idle sessions were closed by the server`);
    log(`${label} with ${CONNS} IDLE sessions (opened in ${secs.toFixed(0)} s): ${loaded.processes} processes, RSS ${(loaded.rssKiB / 1024).toFixed(1)} MiB, PSS ${(loaded.pssKiB / 1024).toFixed(1)} MiB\n${describeTree(loaded)}`);
    return { rest, loaded, rssPer: (loaded.rssKiB - rest.rssKiB) / CONNS, pssPer: (loaded.pssKiB - rest.pssKiB) / CONNS, secs };
  } finally {
    for (const c of conns) c.sock.destroy();
    // the next measurement starts once the sessions are gone (Dovecot's 2,000 imap processes exit
    // one by one; on a loaded machine that takes seconds, and it would load the other server's storm)
    for (const end = Date.now() + 60_000; treePids(masterPid).length > rest.processes + 10 && Date.now() < end;) await sleep(200);
    await sleep(1000);
  }
}

export interface Storm { max: number; p99: number; noops: number; secs: number; failed: number; /** median NOOP before the storm */ before: number }

/** One login storm while a probe session sends NOOPs back to back; the NOOPs that overlapped the storm. */
async function storm(label: string, port: number, masterPid: number, firstUser: number): Promise<Storm> {
  const probe = await session(port, 'probe');
  const samples: { start: number; ms: number }[] = [];
  let stop = false;
  const loop = (async () => {
    while (!stop && !probe.sock.destroyed) {
      const start = performance.now();
      const ms = await probe.cmd('NOOP');
      samples.push({ start, ms });
    }
  })();
  try {
    await sleep(300);
    const cpu0 = treeCpu(masterPid);
    const t0 = performance.now();
    const results = await Promise.allSettled(Array.from({ length: STORM }, async (_, i) => {
      const c = STEPS === 'tls' ? await Conn.openTls(port) : STEPS === 'login' ? await login(port, firstUser + i) : await session(port, firstUser + i);
      await c.cmd('LOGOUT');
      c.sock.destroy();
    }));
    const t1 = performance.now();
    // where the storm's CPU went: which process of the tree was busy while the probe waited
    log(`${label} storm: CPU ${describeCpu(cpu0, treeCpu(masterPid))}`);
    await sleep(300);
    stop = true;
    await loop;
    const during = samples.filter((s) => s.start + s.ms >= t0 && s.start <= t1).map((s) => s.ms).sort((a, b) => a - b);
    const before = samples.filter((s) => s.start + s.ms < t0).map((s) => s.ms).sort((a, b) => a - b);
    return {
      before: before[Math.floor(before.length / 2)] ?? NaN,
      max: during[during.length - 1] ?? NaN,
      p99: during[Math.min(during.length - 1, Math.floor(during.length * 0.99))] ?? NaN,
      noops: during.length,
      secs: (t1 - t0) / 1000,
      failed: results.filter((r) => r.status === 'rejected').length,
    };
  } finally {
    stop = true;
    probe.sock.destroy();
  }
}

const kib = (x: number) => `${x.toFixed(0)} KiB`;
const mib = (k: number) => `${(k / 1024).toFixed(0)} MiB`;
const range = (xs: number[], f: (x: number) => string) => {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? f(lo) : `${f(lo)}–${f(hi)}`;
};
const ms = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} ms`;

function idleRow(mode: string, s: IdleFigures, d: IdleFigures | null): BenchRow[] {
  const totals = (f: IdleFigures, key: 'rssKiB' | 'pssKiB') => `${mib(f.rest[key])} → ${mib(f.loaded[key])}`;
  return (['pssKiB', 'rssKiB'] as const).map((key) => {
    const sPer = key === 'pssKiB' ? s.pssPer : s.rssPer;
    const dPer = d ? (key === 'pssKiB' ? d.pssPer : d.rssPer) : NaN;
    const what = key === 'pssKiB' ? 'PSS' : 'RSS';
    return {
      name: `IMAPS: ${what} per idle IDLE session, ${CONNS} users, whole process tree (${mode})`,
      sealmail: `${kib(sPer)} (tree ${totals(s, key)}, ${s.rest.processes} → ${s.loaded.processes} processes)`,
      dovecot: d ? `${kib(dPer)} (tree ${totals(d, key)}, ${d.rest.processes} → ${d.loaded.processes} processes)` : 'not installed',
      note: d ? `Dovecot / Sealmail: ${(dPer / sPer).toFixed(1)}x (goal ≥ 20x)` : '',
    };
  });
}

function stormRow(mode: string, s: Storm[], d: Storm[] | null): BenchRow {
  const fmt = (xs: Storm[]) => `max ${range(xs.map((x) => x.max), ms)}, p99 ${range(xs.map((x) => x.p99), ms)} (${range(xs.map((x) => x.noops), String)} NOOPs, median before the storm ${range(xs.map((x) => x.before), ms)}; storm ${range(xs.map((x) => x.secs), (v) => `${v.toFixed(1)} s`)}${xs.some((x) => x.failed) ? `; ${xs.map((x) => x.failed).join('/')} logins failed` : ''})`;
  return {
    name: `IMAPS: NOOP latency during a storm of ${STORM} logins (${STEPS === 'full' ? 'TLS, LOGIN, SELECT, LOGOUT' : STEPS === 'login' ? 'TLS, LOGIN, LOGOUT' : 'TLS, LOGOUT'}), ${s.length} storms (${mode})`,
    sealmail: fmt(s),
    dovecot: d ? fmt(d) : 'not installed',
    note: d ? `max Sealmail / Dovecot: ${range(s.map((x, i) => x.max / d[i].max), (v) => `${v.toFixed(1)}x`)} (goal ≤ 1.0)` : '',
  };
}

/**
 * The servers inherit this process's descriptor limit (Node cannot raise it):
 * a Sealmail login process holds two descriptors per proxied session, and
 * this process one per client. Too low a limit would show as refused
 * sessions; say what to raise instead.
 */
function checkFdLimit(): void {
  const soft = Number(/^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1].replace('unlimited', 'Infinity'));
  const need = 2 * CONNS + 1000;
  if (soft < need) throw new Error(`the open-files limit is ${soft}, ${CONNS} sessions need ${need}: run under \`ulimit -n ${need}\``);
}

function bigRows(s: BigFigures, d: BigFigures | null): BenchRow[] {
  const cell = (m: TreeMemory) => `RSS ${mib(m.rssKiB)}, PSS ${mib(m.pssKiB)} (${m.processes} processes)`;
  const ratio = (a: TreeMemory, b: TreeMemory) => `RSS ${(a.rssKiB / b.rssKiB).toFixed(2)}x, PSS ${(a.pssKiB / b.pssKiB).toFixed(2)}x`;
  return [
    { name: 'IMAPS: whole process tree at rest (freshly started)', sealmail: cell(s.rest), dovecot: d ? cell(d.rest) : 'not installed', note: d ? `${ratio(s.rest, d.rest)} (goal RSS ≤ 2x)` : '' },
    ...BIG_SESSIONS.map((n) => ({
      name: `IMAPS: whole process tree, a ${BIG}-message INBOX selected by ${n} session${n > 1 ? 's' : ''}`,
      sealmail: cell(s.selected.get(n)!), dovecot: d ? cell(d.selected.get(n)!) : 'not installed',
      note: d ? `${ratio(s.selected.get(n)!, d.selected.get(n)!)} (goal RSS ≤ 2x)` : '',
    })),
  ];
}

export interface LoadFigures { big: { s: BigFigures; d: BigFigures | null }; idle: { s: IdleFigures; d: IdleFigures | null }; storms: { s: Storm[]; d: Storm[] | null } }

export default async function imapLoadBench(): Promise<BenchRow[]> {
  return (await loadBench()).rows;
}

/** Every measurement of this file; the figures (for the goals table) and the rows. */
export async function loadBench(): Promise<{ figures: LoadFigures; rows: BenchRow[] }> {
  checkFdLimit();
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  const rows: BenchRow[] = [];
  let figures: LoadFigures;
  let finished = false;
  try {
    const dbDir = tempDir(fakeT, 'sealmail-loadbench');
    chmodSync(dbDir, 0o755); // the auth processes (Sealmail's as default_internal_user) open the table
    const db = join(dbDir, 'mailserver.sqlite');
    // the big INBOX on a pair of its own, freshly started (what the idle sessions leave behind would blur it)
    const bigDb = join(dbDir, 'big.sqlite');
    makeUserDb(bigDb, 1);
    const bigSrc = cachedMaildir(BIG);
    const bigSeal = await startSealmailSide(fakeT, bigDb, 1, 100, false);
    const bigDove = await startDovecotSide(fakeT, bigDb, 1, 100, bigSeal.srv.dir, DOVECOT_LOGIN);
    replaceMaildir(bigSeal.srv.dir, benchUser(1), bigSrc);
    if (bigDove) replaceMaildir(bigDove.dv.dir, benchUser(1), bigSrc);
    const sBig = await bigMailbox('Sealmail (root master)', bigSeal.port, bigSeal.masterPid, 1);
    const dBig = bigDove ? await bigMailbox('Dovecot', bigDove.port, bigDove.masterPid, 1) : null;
    rows.push(...bigRows(sBig, dBig));
    await bigSeal.srv.stop();
    bigDove?.dv.stop();

    const users = Math.max(CONNS, STORM * REPEAT);
    makeUserDb(db, users);
    const seal = await startSealmailSide(fakeT, db, users, CONNS, false);
    const dove = await startDovecotSide(fakeT, db, users, CONNS, seal.srv.dir, DOVECOT_LOGIN);
    const root = `root, no mail_uid${DOVECOT_LOGIN === 'security' ? '; Dovecot: imap-login process per connection' : ''}`;
    // a failure shows the server's own account of it
    cleanups.push(() => { if (!finished) log(`Sealmail's output (tail):\n${seal.srv.output().slice(-3000)}${dove ? `\nDovecot's log (tail):\n${dove.dv.log().slice(-3000)}` : ''}`); });
    const sIdle = await idleSessions('Sealmail (root master)', seal.port, seal.masterPid);
    const dIdle = dove ? await idleSessions('Dovecot', dove.port, dove.masterPid) : null;
    rows.push(...idleRow(root, sIdle, dIdle));
    // storms alternate between the servers, so that the machine's other load falls on both alike
    const sStorms: Storm[] = [];
    const dStorms: Storm[] = [];
    for (let i = 0; i < REPEAT; i++) {
      sStorms.push(await storm('Sealmail', seal.port, seal.masterPid, 1 + i * STORM));
      log(`Sealmail storm ${i + 1}: ${JSON.stringify(sStorms[i])}`);
      if (dove) { dStorms.push(await storm('Dovecot', dove.port, dove.masterPid, 1 + i * STORM)); log(`Dovecot storm ${i + 1}: ${JSON.stringify(dStorms[i])}`); }
    }
    rows.push(stormRow(root, sStorms, dove ? dStorms : null));
    figures = { big: { s: sBig, d: dBig }, idle: { s: sIdle, d: dIdle }, storms: { s: sStorms, d: dove ? dStorms : null } };
    finished = true;
    await seal.srv.stop();
    if (WITH_MAIL_UID) {
      const pools = await startSealmailSide(fakeT, db, users, CONNS, true);
      const pIdle = await idleSessions('Sealmail (mail_uid, pools)', pools.port, pools.masterPid);
      rows.push(...idleRow('mail_uid set', pIdle, dIdle));
      const pStorms: Storm[] = [];
      for (let i = 0; i < REPEAT; i++) pStorms.push(await storm('Sealmail (mail_uid)', pools.port, pools.masterPid, 1 + i * STORM));
      rows.push(stormRow('mail_uid set; Dovecot: the storms above', pStorms, dove ? dStorms : null));
      await pools.srv.stop();
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
  return { figures, rows };
}
