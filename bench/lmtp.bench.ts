/**
 * LMTP delivery throughput, Sealmail beside Dovecot's lmtp: 4 and 20 parallel
 * clients (LMTP_BENCH_CLIENTS) deliver LMTP_BENCH_N (1000) messages of ~5 KiB to one user, for a
 * plain user and mail-crypt users on P-256 and P-521 (public key only, as at
 * delivery), both servers running, in slices that take turns (Sealmail's,
 * Dovecot's, …: LMTP_BENCH_ROUNDS), so that the load of a shared machine
 * weighs on both alike. Then the crash run: LMTP_BENCH_KILLS (200) SIGKILLs of the
 * Sealmail server during deliveries, reporting acknowledged / found /
 * duplicates / partial messages afterwards. And memory: the peak RSS of
 * LMTP_BENCH_BIG_N (10) concurrent deliveries of 30 MB each (Sealmail: the
 * sum of the VmHWM of the master and its service processes, LMTP's among
 * them; Dovecot: the sum of its lmtp processes' VmHWM, one process per
 * connection); as root, once more in the root master mode (no mail_uid:
 * the LMTP process streams each copy to the mail process of the user's
 * uid, src/server/lmtp-copy.ts), the sum over the master and all its children.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { ImapFlow } from 'imapflow';
import { setupDovecot } from '../test/helpers/dovecot.js';
import { startSealmail } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import { RestartableSealmail, completeFor, killDuringDelivery, lmtpDeliver, markerMessage, markerOf } from '../test/helpers/lmtp-kill.js';
import type { BenchRow } from './harness.js';

const N = Number(process.env.LMTP_BENCH_N ?? 1000);
const BIG_N = Number(process.env.LMTP_BENCH_BIG_N ?? 10);
const BIG_SIZE = 30 * 1024 * 1024;
const KILLS = Number(process.env.LMTP_BENCH_KILLS ?? 200);
/** Clients of the crash run. */
const CLIENTS = 4;
/** Concurrent clients of the deliveries/s rows, as Postfix's lmtp agents connect (one transaction per connection): LMTP_BENCH_CLIENTS, default 4 and 20. */
const CLIENT_COUNTS = (process.env.LMTP_BENCH_CLIENTS ?? '4,20').split(',').map(Number).filter((n) => n > 0);
/** Slices each deliveries/s figure is measured in, Sealmail's and Dovecot's taking turns (LMTP_BENCH_ROUNDS). */
const ROUNDS = Math.max(1, Number(process.env.LMTP_BENCH_ROUNDS ?? 5));
// LMTP_BENCH_ONLY=throughput: only the deliveries/s rows (no 30 MB or kill -9 runs), for a quick before/after
const THROUGHPUT_ONLY = process.env.LMTP_BENCH_ONLY === 'throughput';
const PW = 'benchpass';
const USER = 'bench@example.org';
const PASSDB = `passdb {\n  driver = static\n  args = password=${PW} userdb_mail_crypt_private_password=%w\n}`;

const cryptConf = (curve: string) => `mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = ${curve}
  mail_crypt_save_version = 2
}
`;

/** Deliveries/s of `count` messages sent by `clients` parallel clients. */
async function run(port: number, prefix: string, clients: number, count = N): Promise<number> {
  let next = 0;
  let failed = 0;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < count) {
      const i = next++;
      if (!(await lmtpDeliver(port, USER, markerMessage(`${prefix}-${i}`, 5 * 1024)))) failed++;
    }
  }));
  if (failed) throw new Error(`${failed} deliveries failed`);
  return count / ((Date.now() - t0) / 1000);
}

/** VmHWM of a process in MB (0 when it is gone). */
function hwmMb(pid: number): number {
  try { return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024; } catch { return 0; }
}

/** Children of `masterPid` whose command name is `comm` (any child when null). */
function childPids(masterPid: number, want: string | null): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === masterPid && (want === null || comm === want)) out.push(Number(p));
    } catch { /* gone */ }
  }
  return out;
}

async function deliverBig(port: number, prefix: string): Promise<void> {
  const ok = await Promise.all(Array.from({ length: BIG_N }, (_, i) => lmtpDeliver(port, USER, markerMessage(`${prefix}-${i}`, BIG_SIZE), 600_000)));
  if (ok.includes(false)) throw new Error(`${ok.filter((x) => !x).length} big deliveries failed`);
}

/** `rootMaster`: Sealmail alone, started as root with no mail_uid (root-master.ts: LMTP, master and mail processes). */
async function bigMessagesRow(fakeT: TestContext, passdb: string, rootMaster = false): Promise<BenchRow> {
  const smPort = await freePort();
  const noMailUid = (text: string) => text.replace(/^mail_[ug]id = .*\n/gm, '');
  const srv = await startSealmail(fakeT, { passdb, extraConf: `protocols = imap lmtp\nservice lmtp {\n  inet_listener lmtp {\n    port = ${smPort}\n  }\n}\n`, rewriteConf: rootMaster ? noMailUid : undefined });
  const t0 = Date.now();
  await deliverBig(smPort, 'big-s');
  const secs = (Date.now() - t0) / 1000;
  // the whole server: the master and its service processes (LMTP has its own since the service pools)
  const sm = [srv.pid, ...childPids(srv.pid, null)].reduce((a, p) => a + hwmMb(p), 0);
  await srv.stop();
  if (rootMaster) {
    return {
      name: `LMTP peak RSS, ${BIG_N} concurrent × 30 MB deliveries, root master mode (no mail_uid)`,
      sealmail: `${sm.toFixed(0)} MB (${secs.toFixed(1)} s)`,
      note: 'master + LMTP + mail + auth + login processes; each copy streamed from the LMTP process\'s spool to the mail process',
    };
  }
  let dv = 'not installed';
  const dvPort = await freePort();
  const d = setupDovecot(fakeT, { start: true, passdb, extraConf: `service lmtp {\n  inet_listener lmtp {\n    port = ${dvPort}\n  }\n}\n` });
  if (d) {
    const pidFile = join(d.dir, 'base', 'master.pid');
    const master = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
    // lmtp processes outlive their connection (idle_kill): their peaks are read after the run
    await deliverBig(dvPort, 'big-d');
    const pids = childPids(master, 'lmtp');
    dv = `${pids.reduce((a, p) => a + hwmMb(p), 0).toFixed(0)} MB (${pids.length} lmtp processes)`;
    d.stop();
  }
  return {
    name: `LMTP peak RSS, ${BIG_N} concurrent × 30 MB deliveries`,
    sealmail: `${sm.toFixed(0)} MB (${secs.toFixed(1)} s)`,
    dovecot: dv,
    note: 'before the spool (1907c8f): 1241 MB, 35 s; the master held every message whole',
  };
}

export interface LmtpFigure { label: string; clients: number; s: number; d: number }

/**
 * Deliveries/s for a plain, a P-256 and a P-521 user with each of
 * CLIENT_COUNTS concurrent clients: per user shape a fresh Sealmail, then a
 * fresh Dovecot (d NaN when Dovecot is not installed).
 */
export async function lmtpThroughput(fakeT: TestContext, passdb = PASSDB): Promise<{ figures: LmtpFigure[]; rows: BenchRow[] }> {
  const figures: LmtpFigure[] = [];
  let per = N;
  for (const [label, curve] of [['plain', ''], ['mail-crypt P-256', 'prime256v1'], ['mail-crypt P-521', 'secp521r1']] as const) {
    const conf = curve ? cryptConf(curve) : '';
    const smPort = await freePort();
    const srv = await startSealmail(fakeT, { passdb, extraConf: `protocols = imap lmtp\n${conf}service lmtp {\n  inet_listener lmtp {\n    port = ${smPort}\n  }\n}\n` });
    if (curve) {
      const c = new ImapFlow({ host: '127.0.0.1', port: srv.imapsPort, secure: true, auth: { user: USER, pass: PW }, logger: false, tls: { rejectUnauthorized: false } });
      await c.connect();
      await c.logout();
    }
    const dvPort = await freePort();
    const dv = setupDovecot(fakeT, { start: true, passdb, extraConf: `${conf}service lmtp {\n  inet_listener lmtp {\n    port = ${dvPort}\n  }\n}\n` });
    if (dv && curve) {
      const gen = dv.doveadm(['-o', `plugin/mail_crypt_private_password=${PW}`, 'mailbox', 'cryptokey', 'generate', '-u', USER, '-U']);
      if (gen.status !== 0) throw new Error(`doveadm cryptokey generate: ${gen.stderr}`);
    }
    // warmed up first (Sealmail's processes load the delivery code on their first message, Dovecot starts its lmtp processes)
    const warm = 2 * Math.max(...CLIENT_COUNTS);
    await run(smPort, `s-${curve}-warm`, Math.max(...CLIENT_COUNTS), warm);
    if (dv) await run(dvPort, `d-${curve}-warm`, Math.max(...CLIENT_COUNTS), warm);
    // both servers up at once, and their runs interleaved in ROUNDS slices (Sealmail, Dovecot, Sealmail, …):
    // on a machine shared with other work the load then weighs on both alike, and the ratio holds
    for (const clients of CLIENT_COUNTS) {
      const slice = Math.max(1, Math.round(N / ROUNDS));
      per = slice * ROUNDS;
      let sSecs = 0; let dSecs = 0;
      for (let r = 0; r < ROUNDS; r++) {
        sSecs += slice / await run(smPort, `s-${curve}-${clients}-${r}`, clients, slice);
        if (dv) dSecs += slice / await run(dvPort, `d-${curve}-${clients}-${r}`, clients, slice);
      }
      figures.push({ label, clients, s: per / sSecs, d: dv ? per / dSecs : NaN });
    }
    await srv.stop();
    dv?.stop();
  }
  const rows = figures.map(({ label, clients, s, d }) => ({
    name: `LMTP deliveries/s, ${label}, ${clients} clients, ${per} × 5 KiB`,
    sealmail: `${s.toFixed(0)}/s`,
    dovecot: Number.isNaN(d) ? 'not installed' : `${d.toFixed(0)}/s`,
    note: Number.isNaN(d) ? '' : `${(s / d).toFixed(2)}x Dovecot`,
  }));
  return { figures, rows };
}

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  const passdb = PASSDB;
  try {
    if (!THROUGHPUT_ONLY) rows.push(await bigMessagesRow(fakeT, passdb));
    if (!THROUGHPUT_ONLY && process.getuid?.() === 0) rows.push(await bigMessagesRow(fakeT, passdb, true));
    rows.push(...(await lmtpThroughput(fakeT, passdb)).rows);

    if (THROUGHPUT_ONLY) return rows;
    // crash run: SIGKILL during deliveries, then count
    const port = await freePort();
    const srv0 = await startSealmail(fakeT, { passdb, extraConf: `protocols = imap lmtp\nservice lmtp {\n  inet_listener lmtp {\n    port = ${port}\n  }\n}\n` });
    await srv0.stop();
    const srv = new RestartableSealmail(srv0.conf, [port, srv0.imapsPort]);
    cleanups.push(() => srv.kill9());
    await srv.start();
    const t0 = Date.now();
    const stats = await killDuringDelivery(srv, { port, rcpt: USER, clients: CLIENTS, kills: KILLS, size: 5 * 1024, prefix: 'k', minUpMs: 200, maxUpMs: 1000 });
    const secs = (Date.now() - t0) / 1000;
    await srv.stop();
    const maildir = join(srv0.home(USER), 'Maildir');
    const seen = new Map<string, number>();
    let partial = 0;
    for (const sub of ['cur', 'new']) {
      for (const f of readdirSync(join(maildir, sub))) {
        const text = readFileSync(join(maildir, sub, f), 'latin1');
        const m = markerOf(text);
        if (!m || !completeFor(text, m)) { partial++; continue; }
        seen.set(m, (seen.get(m) ?? 0) + 1);
      }
    }
    const missing = [...stats.acked].filter((m) => !seen.has(m)).length;
    const dups = [...seen.values()].filter((n) => n > 1).length;
    rows.push({
      name: `LMTP under kill -9 ×${stats.kills} (${CLIENTS} clients, ${secs.toFixed(0)} s)`,
      sealmail: `${stats.acked.size} acknowledged, ${[...stats.acked].filter((m) => seen.has(m)).length} found, ${missing} missing, ${dups} duplicates, ${partial} partial`,
      note: `${seen.size - stats.acked.size + missing} stored but unacknowledged (killed before the 250); restart ${Math.round(stats.restartMs.reduce((a, b) => a + b, 0) / Math.max(1, stats.restartMs.length))} ms avg`,
    });
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
  return rows;
}
