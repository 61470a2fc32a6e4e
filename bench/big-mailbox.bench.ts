/**
 * A 100k-message INBOX (BIG_BENCH_N) on Sealmail and Dovecot 2.3 side by
 * side, same run, same ISPmail shape (bench/ispmail-pair.ts: SQLite users,
 * IMAPS, quota), each server started fresh:
 * - the first SELECT and the first `FETCH 1:* (FLAGS UID RFC822.SIZE
 *   ENVELOPE)` (every message parsed, both servers fill their caches);
 * - RSS and PSS of the whole process tree at rest, with the INBOX selected
 *   by 1 session and by 10 sessions (bench/process-tree.ts);
 * - a warm SELECT of the INBOX (median of 5);
 * - in this process: the heap one opened folder handle holds for the mailbox.
 * The Maildir comes from a deterministic generator and is cached under
 * /tmp (bigMaildir), each server gets a hard-linked copy (Maildir files are
 * never written in place; flag changes are renames). Per-process breakdowns
 * go to stderr. BIG_BENCH_ONLY=sealmail skips Dovecot (profiling runs).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { BenchRow } from './harness.js';
import { Conn } from './imap-client.js';
import { describeTree, treeMemory, treePids, type TreeMemory } from './process-tree.js';
import { benchUser, makeUserDb, PASSWORD, startDovecotSide, startSealmailSide } from './ispmail-pair.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MaildirFolder } from '../src/mailstore/maildir/folder.js';
import { Selected } from '../src/imap/selected.js';
import { mailIds } from '../test/helpers/dovecot.js';
import { tempDir } from '../test/helpers/tmp.js';

const N = Number(process.env.BIG_BENCH_N ?? 100_000);
const SESSIONS = 10;
const ONLY = process.env.BIG_BENCH_ONLY ?? '';
const USER = benchUser(1);
const GENERATOR_VERSION = 1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`${s}\n`);

const NAMES = ['Alice Example', 'Bob Builder', 'Carol Jones', 'Dave Müller', 'Erin O\'Brien', 'Frank Li', 'Grace Hopper', 'Heidi Klum'];
const WORDS = ['report', 'meeting', 'invoice', 'holiday', 'release', 'question', 'update', 'photos', 'budget', 'lunch', 'server', 'backup'];

/** Message i of the generated mailbox: realistic headers (Received chain, MIME, a folded To), bodies of 1–6 KB. */
function bigMessage(i: number): string {
  const from = NAMES[i % NAMES.length];
  const addr = `${from.split(' ')[0].toLowerCase().replace(/[^a-z]/g, '')}${i % 13}@example.net`;
  const day = 1 + (i % 28);
  const subj = `${WORDS[i % WORDS.length]} ${WORDS[(i * 7) % WORDS.length]} #${i}${i % 5 === 0 ? ' =?UTF-8?Q?gr=C3=BC=C3=9Fe?=' : ''}`;
  const head = [
    `Return-Path: <${addr}>`,
    `Delivered-To: ${USER}`,
    `Received: from mx${i % 4}.example.net (mx${i % 4}.example.net [192.0.2.${i % 250}])\n\tby mail.example.org (Postfix) with ESMTPS id ${(i * 2654435761 >>> 0).toString(16).toUpperCase()}\n\tfor <${USER}>; ${day} Jan 2026 10:${String(i % 60).padStart(2, '0')}:00 +0000 (UTC)`,
    `From: ${from} <${addr}>`,
    `To: ${USER},\n ${i % 3 === 0 ? 'team@example.org' : 'Someone Else <else@example.org>'}`,
    ...(i % 4 === 0 ? [`Cc: list-${i % 10}@lists.example.org`] : []),
    `Subject: ${subj}`,
    `Date: ${['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][i % 7]}, ${day} Jan 2026 10:${String(i % 60).padStart(2, '0')}:00 +0000`,
    `Message-ID: <${i}.${(i * 40503) % 99991}@example.net>`,
    ...(i % 3 === 1 ? [`In-Reply-To: <${i - 1}.${((i - 1) * 40503) % 99991}@example.net>`] : []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
  ].join('\n');
  const line = `Line of the ${WORDS[i % WORDS.length]} text for message ${i}, some words to fill it.\n`;
  return `${head}\n\n${line.repeat(15 + (i % 80))}`;
}

/**
 * The generated Maildir of `n` messages, built once into /tmp and reused
 * (a version bump of the generator makes a new one): all in cur/, a third
 * unseen, some flagged/answered, every 50th with keyword $Forwarded,
 * S= and W= in the names as Dovecot writes them.
 */
export function bigMaildir(n: number): string {
  const root = `/tmp/sealmail-bigmbox-v${GENERATOR_VERSION}-${n}`;
  const dir = join(root, 'Maildir');
  if (existsSync(join(root, 'done'))) return dir;
  rmSync(root, { recursive: true, force: true });
  const building = join(root, 'building');
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(building, d), { recursive: true });
  writeFileSync(join(building, 'dovecot-keywords'), '0 $Forwarded\n');
  for (let i = 0; i < n; i++) {
    const body = bigMessage(i);
    const size = Buffer.byteLength(body);
    const lfs = body.split('\n').length - 1;
    const flags = `${i % 17 === 0 ? 'F' : ''}${i % 7 === 0 ? 'R' : ''}${i % 3 === 2 ? '' : 'S'}${i % 50 === 0 ? 'a' : ''}`;
    writeFileSync(join(building, 'cur', `${1767200000 + Math.floor(i / 50)}.M${(i % 50) * 1000 + 17}P${1000 + (i % 30000)}V0000000000000801I${(0x100000 + i).toString(16)}.mail.example.org,S=${size},W=${size + lfs}:2,${flags}`), body);
  }
  renameSync(building, dir);
  writeFileSync(join(root, 'done'), `${n}\n`);
  return dir;
}

/** The cached Maildir as `user`'s INBOX under `home`, hard-linked, owned by the mail user. */
function installInbox(src: string, home: string): void {
  const dest = join(home, 'Maildir');
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(home, { recursive: true });
  const r = spawnSync('cp', ['-al', src, dest]);
  if (r.status !== 0) throw new Error(`cp -al: ${r.stderr}`);
  const { uid, gid } = mailIds();
  if (process.getuid?.() === 0) spawnSync('chown', ['-R', `${uid}:${gid}`, home]);
}

/** Tree memory once it stopped moving (two reads 1 s apart within 2 %), at most 15 s. */
async function settledMemory(pid: number): Promise<TreeMemory> {
  let prev = treeMemory(pid);
  for (let i = 0; i < 15; i++) {
    await sleep(1000);
    const m = treeMemory(pid);
    if (Math.abs(m.pssKiB - prev.pssKiB) < 0.02 * prev.pssKiB) return m;
    prev = m;
  }
  return prev;
}

async function session(port: number): Promise<{ c: Conn; select: number }> {
  const c = await Conn.openTls(port);
  await c.cmd(`LOGIN ${USER} ${PASSWORD}`);
  if (!c.last.startsWith('OK')) throw new Error(`LOGIN: ${c.last}`);
  const select = await c.cmd('SELECT INBOX');
  if (!c.last.startsWith('OK')) throw new Error(`SELECT: ${c.last}`);
  return { c, select };
}

interface Figures { rest: TreeMemory; one: TreeMemory; ten: TreeMemory; firstSelect: number; firstFetch: number; warmSelect: number }

async function measure(label: string, port: number, masterPid: number): Promise<Figures> {
  const rest = await settledMemory(masterPid);
  log(`${label} at rest: RSS ${mib(rest.rssKiB)}, PSS ${mib(rest.pssKiB)}\n${describeTree(rest)}`);
  const conns: Conn[] = [];
  try {
    const first = await session(port);
    conns.push(first.c);
    const firstFetch = await first.c.cmd('FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)');
    if (!first.c.last.startsWith('OK')) throw new Error(`FETCH: ${first.c.last}`);
    log(`${label}: first SELECT ${first.select.toFixed(0)} ms, first FETCH ENVELOPE ${firstFetch.toFixed(0)} ms`);
    const one = await settledMemory(masterPid);
    log(`${label} with 1 session: RSS ${mib(one.rssKiB)}, PSS ${mib(one.pssKiB)}\n${describeTree(one)}`);
    if (process.env.BIG_BENCH_HEAPSNAP) {
      // diagnosis (NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2): a snapshot runs a full GC first, so the
      // memory after it says how much of the figure above was garbage not yet collected
      for (const p of treePids(masterPid)) { try { if (readFileSync(`/proc/${p}/cmdline`, 'latin1').includes('--mail-process')) process.kill(p, 'SIGUSR2'); } catch { /* gone */ } }
      await sleep(20_000);
      const gc = await settledMemory(masterPid);
      log(`${label} with 1 session after a full GC: RSS ${mib(gc.rssKiB)}, PSS ${mib(gc.pssKiB)}\n${describeTree(gc)}`);
    }
    for (let i = 1; i < SESSIONS; i++) conns.push((await session(port)).c);
    const ten = await settledMemory(masterPid);
    log(`${label} with ${SESSIONS} sessions: RSS ${mib(ten.rssKiB)}, PSS ${mib(ten.pssKiB)}\n${describeTree(ten)}`);
    const warm: number[] = [];
    for (let i = 0; i < 5; i++) warm.push(await first.c.cmd('SELECT INBOX'));
    warm.sort((a, b) => a - b);
    return { rest, one, ten, firstSelect: first.select, firstFetch, warmSelect: warm[2] };
  } finally {
    for (const c of conns) c.sock.destroy();
  }
}

const mib = (k: number) => `${(k / 1024).toFixed(0)} MiB`;
const ms = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} ms`;

function rows(s: Figures, d: Figures | null): BenchRow[] {
  const ratio = (a: number, b: number, goal: string) => (d ? `Sealmail / Dovecot: ${(a / b).toFixed(2)}x${goal ? ` (goal ${goal})` : ''}` : '');
  const mem = (key: 'one' | 'ten', what: 'rssKiB' | 'pssKiB') => {
    const f = (x: Figures) => `${mib(x[key][what])} (at rest ${mib(x.rest[what])})`;
    return {
      name: `IMAPS: ${what === 'rssKiB' ? 'RSS' : 'PSS'} of the whole tree, ${N} msg INBOX selected by ${key === 'one' ? 1 : SESSIONS} session${key === 'one' ? '' : 's'}`,
      sealmail: f(s), dovecot: d ? f(d) : 'not measured',
      note: d ? `${ratio(s[key][what], d[key][what], '≤ 2.0')}; above rest ${((s[key][what] - s.rest[what]) / Math.max(1, d[key][what] - d.rest[what])).toFixed(1)}x` : '',
    };
  };
  return [
    mem('one', 'rssKiB'), mem('one', 'pssKiB'), mem('ten', 'rssKiB'), mem('ten', 'pssKiB'),
    { name: `IMAPS: first SELECT of ${N} msgs`, sealmail: ms(s.firstSelect), dovecot: d ? ms(d.firstSelect) : 'not measured', note: d ? ratio(s.firstSelect, d.firstSelect, '') : '' },
    { name: `IMAPS: first FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE) on ${N}`, sealmail: ms(s.firstFetch), dovecot: d ? ms(d.firstFetch) : 'not measured', note: d ? ratio(s.firstFetch, d.firstFetch, '≤ 1.0') : '' },
    { name: `IMAPS: warm SELECT of ${N} msgs (median of 5)`, sealmail: ms(s.warmSelect), dovecot: d ? ms(d.warmSelect) : 'not measured', note: d ? ratio(s.warmSelect, d.warmSelect, '≤ 1.0') : '' },
  ];
}

/** A full GC (V8's gc() made reachable without starting node with --expose-gc). */
function fullGc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * Memory one opened folder handle holds for the mailbox, in this process:
 * heap and array buffers after a full GC, before and after its first sync
 * (UIDs assigned on a hard-linked copy), and for a second handle of it.
 */
export async function folderHeap(src: string, parent: string): Promise<{ first: number; second: number; syncMs: number; selectCpuMs: number }> {
  const dir = join(parent, 'Maildir');
  const r = spawnSync('cp', ['-al', src, dir]);
  if (r.status !== 0) throw new Error(`cp -al: ${r.stderr}`);
  const used = () => { fullGc(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
  const base = used();
  const a = new MaildirFolder(dir, { mailboxName: 'INBOX', rootDir: dir });
  const t0 = performance.now();
  await a.sync({ moveNew: true });
  const syncMs = performance.now() - t0;
  const one = used();
  const b = new MaildirFolder(dir, { mailboxName: 'INBOX', rootDir: dir });
  await b.sync({ moveNew: true });
  const two = used();
  if (a.messages.length !== N || b.messages.length !== N) throw new Error('folder handles do not see every message');
  // a warm SELECT's own CPU (the session's view and [UNSEEN]), which wall time on a loaded machine hides
  await sleep(2500);
  const cpu: number[] = [];
  for (let i = 0; i < 15; i++) {
    const c0 = process.cpuUsage();
    await new Selected('INBOX', a, false).open();
    a.firstWithout('\\Seen');
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  cpu.sort((x, y) => x - y);
  return { first: (one - base) / 1048576, second: (two - one) / 1048576, syncMs, selectCpuMs: cpu[7] };
}

export default async function bigMailboxBench(): Promise<BenchRow[]> {
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  try {
    const t0 = Date.now();
    const src = bigMaildir(N);
    log(`Maildir of ${N} messages: ${src} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    const heap = await folderHeap(src, tempDir(fakeT, 'sealmail-bigheap'));
    log(`one folder handle: ${heap.first.toFixed(1)} MiB (first sync ${heap.syncMs.toFixed(0)} ms), a second one: ${heap.second.toFixed(1)} MiB`);
    const selectRow: BenchRow = { name: `IMAP: warm SELECT of ${N} msgs, CPU of the view and [UNSEEN] (in-process, median of 15)`, sealmail: `${heap.selectCpuMs.toFixed(1)} ms`, dovecot: '–' };
    const heapRow: BenchRow = { name: `Maildir, ${N} msgs: heap + array buffers held by an opened folder (after GC, in-process)`, sealmail: `${heap.first.toFixed(1)} MiB (a second handle +${heap.second.toFixed(1)} MiB)`, dovecot: '–', note: 'first includes the per-process MODSEQ state' };
    const dbDir = tempDir(fakeT, 'sealmail-bigbench');
    chmodSync(dbDir, 0o755);
    const db = join(dbDir, 'mailserver.sqlite');
    makeUserDb(db, 1);
    let d: Figures | null = null;
    // one server at a time: the other's memory and CPU stay out of the figures
    const seal = await startSealmailSide(fakeT, db, 1, SESSIONS + 10, false);
    if (ONLY !== 'dovecot') {
      installInbox(src, join(seal.srv.dir, 'home', 'example.org', USER.split('@')[0]));
    }
    const s = ONLY === 'dovecot' ? null : await measure('Sealmail', seal.port, seal.masterPid);
    await seal.srv.stop();
    if (ONLY !== 'sealmail') {
      const dove = await startDovecotSide(fakeT, db, 1, SESSIONS + 10, seal.srv.dir);
      if (dove) {
        // the pair's Dovecot keeps test/helpers/dovecot.ts's mail_location (home/<user>/Maildir), not ~/Maildir
        installInbox(src, join(dove.dv.dir, 'home', USER));
        d = await measure('Dovecot', dove.port, dove.masterPid);
        dove.dv.stop();
      }
    }
    if (!s) return [heapRow, selectRow];
    return [heapRow, selectRow, ...rows(s, d)];
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}
