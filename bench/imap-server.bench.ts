/**
 * The IMAP server side by side with Dovecot 2.3, both over TCP on copies of
 * the same Maildirs: SELECT of a big mailbox (IMAP_BENCH_N, default 100k),
 * `FETCH 1:* (FLAGS UID RFC822.SIZE)` and `(… ENVELOPE)` on it (first time
 * and warm), `FETCH 1:2000 ENVELOPE`, `UID SEARCH TEXT` over 10k messages.
 * Memory per idle IDLE connection: bench/imap-load.bench.ts (whole process
 * trees, IMAPS, the ISPmail shape).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setupDovecot, mailIds } from '../test/helpers/dovecot.js';
import { startSealmail } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import type { BenchRow } from './harness.js';
import { Conn } from './imap-client.js';

const N = Number(process.env.IMAP_BENCH_N ?? 100_000);
const USER = 'bench@example.org';

export function makeMaildir(root: string, n: number, bodyFor: (i: number) => string): void {
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(root, d), { recursive: true });
  for (let i = 0; i < n; i++) {
    const body = bodyFor(i);
    const lfs = body.split('\n').length - 1;
    writeFileSync(join(root, 'cur', `${1700000000 + Math.floor(i / 1000)}.M${i % 1000}P${i}.bench,S=${body.length},W=${body.length + lfs}:2,S`), body);
  }
}

/**
 * A Maildir of `n` bench messages (`msg`) generated once into a cache under
 * the temp dir and reused by later runs (a 100k-message Maildir takes a
 * minute to write); servers get copies of it (installCopy).
 */
export function cachedMaildir(n: number): string {
  const dir = join(tmpdir(), 'sealmail-bench-cache', `maildir-${n}`);
  if (existsSync(`${dir}.complete`)) return dir;
  rmSync(dir, { recursive: true, force: true });
  makeMaildir(dir, n, msg);
  writeFileSync(`${dir}.complete`, '');
  return dir;
}

/** A copy of `src` as `dest` (a home's Maildir or one folder of it), owned by the mail user when run as root. */
export function installCopy(src: string, dest: string, home: string): void {
  mkdirSync(join(dest, '..'), { recursive: true });
  cpSync(src, dest, { recursive: true });
  const { uid, gid } = mailIds();
  if (process.getuid?.() === 0) spawnSync('chown', ['-R', `${uid}:${gid}`, home]);
}

/** The bench's message i: a small text message, one in 500 with the word `needle`. */
export const msg = (i: number) => `From: Sender ${i % 97} <s${i % 97}@example.org>\nTo: ${USER}\nSubject: bench message ${i}\nDate: Mon, 2 Feb 2026 10:00:00 +0000\nMessage-ID: <${i}@bench>\n\n${i % 500 === 0 ? 'needle in this one\n' : ''}${'filler text line\n'.repeat(5)}`;

async function measure(port: number): Promise<{ select: number; fetch: number; fetchEnv: number; env: number; search: number }> {
  const c = await Conn.open(port);
  await c.cmd(`LOGIN ${USER} pass`);
  const select = await c.cmd('SELECT INBOX');
  const fetch = await c.cmd('FETCH 1:* (FLAGS UID RFC822.SIZE)');
  // the figure: what a client's first full header sync asks for
  const fetchEnv = await c.cmd('FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)');
  const env = await c.cmd('FETCH 1:2000 ENVELOPE');
  await c.cmd('SELECT Ten');
  const search = await c.cmd('UID SEARCH TEXT needle');
  c.sock.destroy();
  return { select, fetch, fetchEnv, env, search };
}

export default async function imapServerBench(): Promise<BenchRow[]> {
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  const cleanups: (() => unknown)[] = [];
  try {
    const port = await freePort();
    const dv = setupDovecot(fakeT, {
      start: true,
      extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n`,
    });
    if (!dv) return [{ name: 'imap server', sealmail: 'skipped', dovecot: 'Dovecot not installed' }];
    const srv = await startSealmail(fakeT, { extraConf: process.env.IMAP_BENCH_PROCS ? `service imap-login {\n  process_min_avail = ${process.env.IMAP_BENCH_PROCS}\n}\n` : "" });
    const src = join(dv.dir, 'src-maildir');
    makeMaildir(src, N, msg);
    makeMaildir(join(src, '.Ten'), 10_000, msg);
    for (const home of [dv.home(USER), srv.home(USER)]) installCopy(src, join(home, 'Maildir'), home);
    // first contact builds the uidlists (and Dovecot's index): measure the warm state, as a server lives
    const dCold = await measure(port);
    const sCold = await measure(srv.imapPort);
    // every IMAP worker process opens the folder once: warm them all (connections at once spread over them)
    await Promise.all(Array.from({ length: 4 }, () => measure(srv.imapPort)));
    // a mailbox untouched for a couple of seconds: what a server sees most of the time
    await new Promise((r) => setTimeout(r, 2500));
    const d = await measure(port);
    const s = await measure(srv.imapPort);
    const ms = (x: number) => `${x.toFixed(0)} ms`;
    return [
      { name: `IMAP: SELECT of ${N} msgs (warm)`, sealmail: ms(s.select), dovecot: ms(d.select) },
      { name: `IMAP: FETCH 1:* (FLAGS UID RFC822.SIZE) on ${N}`, sealmail: ms(s.fetch), dovecot: ms(d.fetch) },
      { name: `IMAP: FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE) on ${N}, first time`, sealmail: ms(sCold.fetchEnv), dovecot: ms(dCold.fetchEnv), note: 'every message parsed; both fill their caches' },
      { name: `IMAP: FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE) on ${N} (warm)`, sealmail: ms(s.fetchEnv), dovecot: ms(d.fetchEnv), note: 'from the caches' },
      { name: 'IMAP: FETCH 1:2000 ENVELOPE (warm)', sealmail: ms(s.env), dovecot: ms(d.env), note: 'both from their caches (Sealmail: sealmail.cache)' },
      { name: 'IMAP: UID SEARCH TEXT over 10k msgs (plain)', sealmail: ms(s.search), dovecot: ms(d.search), note: 'no FTS on either side' },
    ];
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}
