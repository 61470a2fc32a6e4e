/**
 * The multi-client random-mix load generator (issue 15, deliverable 1):
 * `clients` lock-step IMAP clients (bench/imap-driver.ts, which checks the
 * replies) each draw commands from a seeded random mix with configurable
 * weights, for a bounded time and count; per command: latencies (p50, p99)
 * and completions per second; per server: the protocol errors seen.
 * Two named profiles, as the issue measured them:
 * - `shared50`: 50 clients on one user's INBOX, logged in once, no logouts
 *   (the timed window starts when all are in);
 * - `login10`: 10 clients, each on its own user, a new connection (TLS),
 *   LOGIN and SELECT every cycle of a few commands, then LOGOUT.
 * The mix's weights can be overridden with MIX_WEIGHTS ("FETCH_META=4,STORE=0").
 */
import { benchUser, PASSWORD } from './ispmail-pair.js';
import { addErrors, CheckedConn, noErrors, type ProtocolErrors } from './imap-driver.js';
import { percentile } from './harness.js';
import { prng } from '../test/helpers/prng.js';

export const OPS = ['CONNECT', 'LOGIN', 'SELECT', 'FETCH_META', 'FETCH_BODY', 'STORE', 'EXPUNGE', 'APPEND', 'NOOP', 'LOGOUT'] as const;
export type Op = typeof OPS[number];
/** The operations drawn at random (CONNECT and LOGIN come with a session's start). */
type MixOp = Exclude<Op, 'CONNECT' | 'LOGIN'>;

export interface Profile {
  name: string;
  clients: number;
  /** All clients on benchUser(1)'s INBOX, else client i on benchUser(2 + i). */
  shared: boolean;
  /** Commands per session before its LOGOUT (Infinity: log in once, never out). */
  opsPerLogin: number;
  weights: Record<MixOp, number>;
}

const BASE_WEIGHTS: Record<MixOp, number> = { SELECT: 1, FETCH_META: 4, FETCH_BODY: 3, STORE: 3, EXPUNGE: 1, APPEND: 1, NOOP: 1, LOGOUT: 0 };

function weightsFromEnv(): Record<MixOp, number> {
  const w = { ...BASE_WEIGHTS };
  for (const kv of (process.env.MIX_WEIGHTS ?? '').split(',').filter(Boolean)) {
    const [k, v] = kv.split('=');
    if (!(k in w) || !(Number(v) >= 0)) throw new Error(`MIX_WEIGHTS: ${kv}: expected one of ${Object.keys(w).join(' ')} = a number ≥ 0`);
    w[k as MixOp] = Number(v);
  }
  return w;
}

export const PROFILES = {
  shared50: { name: '50 clients on one INBOX, no logouts', clients: Number(process.env.MIX_SHARED_CLIENTS ?? 50), shared: true, opsPerLogin: Infinity, weights: weightsFromEnv() },
  login10: { name: '10 clients, a login every cycle', clients: Number(process.env.MIX_LOGIN_CLIENTS ?? 10), shared: false, opsPerLogin: Number(process.env.MIX_OPS_PER_LOGIN ?? 4), weights: weightsFromEnv() },
} satisfies Record<string, Profile>;

export interface MixResult {
  profile: Profile;
  secs: number;
  /** Latencies (ms) per operation, ascending. */
  lat: Map<Op, number[]>;
  errors: ProtocolErrors;
  /** Unexpected lines, a few per server. */
  samples: string[];
  /** Sessions that could not be opened (greeting, LOGIN or SELECT refused). */
  failedSessions: number;
}

function pick(r: () => number, w: Record<MixOp, number>): MixOp {
  const entries = Object.entries(w) as [MixOp, number][];
  const total = entries.reduce((a, [, x]) => a + x, 0);
  let x = r() * total;
  for (const [op, weight] of entries) { if ((x -= weight) < 0) return op; }
  return entries[entries.length - 1][0];
}

/** A ~5 KB message with a unique Message-ID. */
function message(id: string): Buffer {
  const head = `From: Mix <mix@example.net>\r\nTo: ${benchUser(1)}\r\nSubject: mix ${id}\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <${id}@mix.bench>\r\n\r\n`;
  return Buffer.from(head + 'filler text line of a five kilobyte message in the mix\r\n'.repeat(90));
}

export interface MixOptions { port: number; tls: boolean; secs: number; maxOpsPerClient: number; seed: number; log?: (s: string) => void }

/** Runs `p` against one server; bounded by `secs` of timed window and `maxOpsPerClient` commands per client. */
export async function runMix(p: Profile, o: MixOptions): Promise<MixResult> {
  const lat = new Map<Op, number[]>(OPS.map((op) => [op, []]));
  const errors = noErrors();
  const samples: string[] = [];
  let failedSessions = 0;
  const conns: CheckedConn[] = [];
  const retire = (c: CheckedConn) => { addErrors(errors, c.errors); samples.push(...c.samples); };

  /** A session logged in with INBOX selected, or null (counted) when the server refused it. */
  const open = async (user: string, timed: boolean): Promise<CheckedConn | null> => {
    const t0 = performance.now();
    let c: CheckedConn;
    try { c = await CheckedConn.open(o.port, o.tls); } catch (e) { failedSessions++; samples.push(`connect: ${(e as Error).message}`); return null; }
    if (timed) lat.get('CONNECT')!.push(performance.now() - t0);
    const login = await c.cmd(`LOGIN ${user} ${PASSWORD}`);
    const sel = c.last.startsWith('OK') ? await c.cmd('SELECT INBOX') : 0;
    if (!c.last.startsWith('OK')) { failedSessions++; retire(c); c.sock.destroy(); return null; }
    if (timed) { lat.get('LOGIN')!.push(login); lat.get('SELECT')!.push(sel); }
    return c;
  };

  const userOf = (i: number) => benchUser(p.shared ? 1 : 2 + i);
  // the shared profile's sessions are opened before the clock starts (their steady state is measured)
  const initial: (CheckedConn | null)[] = p.opsPerLogin === Infinity
    ? await Promise.all(Array.from({ length: p.clients }, (_, i) => open(userOf(i), false)))
    : Array.from({ length: p.clients }, () => null);
  const t0 = performance.now();
  const end = t0 + o.secs * 1000;

  await Promise.all(Array.from({ length: p.clients }, async (_, i) => {
    const r = prng(o.seed * 1000 + i);
    let c = initial[i];
    let inSession = 0;
    for (let ops = 0; ops < o.maxOpsPerClient && performance.now() < end; ops++) {
      if (!c || c.isClosed) {
        if (c) retire(c);
        c = await open(userOf(i), true);
        inSession = 0;
        if (!c) { await new Promise((res) => setTimeout(res, 100)); continue; }
      }
      let op = inSession >= p.opsPerLogin ? 'LOGOUT' : pick(r, p.weights);
      inSession++;
      // nothing to name in an empty mailbox: add to it instead
      if (c.exists === 0 && (op === 'FETCH_META' || op === 'FETCH_BODY' || op === 'STORE' || op === 'EXPUNGE')) op = 'APPEND';
      const seq = 1 + Math.floor(r() * c.exists);
      let ms: number;
      switch (op) {
        case 'SELECT': ms = await c.cmd('SELECT INBOX'); break;
        case 'FETCH_META': ms = await c.cmd(`FETCH ${seq}:${Math.min(c.exists, seq + 19)} (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)`); break;
        case 'FETCH_BODY': ms = await c.cmd(`FETCH ${seq} BODY.PEEK[]`); break;
        case 'STORE': ms = await c.cmd(`STORE ${seq} ${r() < 0.5 ? '+' : '-'}FLAGS (${r() < 0.5 ? '\\Seen' : '\\Flagged'})`); break;
        case 'EXPUNGE': {
          lat.get('STORE')!.push(await c.cmd(`STORE ${seq} +FLAGS.SILENT (\\Deleted)`));
          ms = await c.cmd('EXPUNGE');
          break;
        }
        case 'APPEND': ms = await c.cmd('APPEND INBOX (\\Seen)', message(`${o.seed}.${i}.${ops}.${Math.floor(r() * 1e9)}`)); break;
        case 'NOOP': ms = await c.cmd('NOOP'); break;
        case 'LOGOUT': ms = await c.logout(); retire(c); c = null; break;
      }
      lat.get(op)!.push(ms);
    }
    if (c) conns.push(c);
  }));
  const secs = (performance.now() - t0) / 1000;
  await Promise.all(conns.map(async (c) => { if (!c.isClosed) await c.logout(); retire(c); }));
  for (const xs of lat.values()) xs.sort((a, b) => a - b);
  o.log?.(`${p.name}: ${secs.toFixed(1)} s, errors ${JSON.stringify(errors)}${samples.length ? `\n  ${samples.slice(0, 8).join('\n  ')}` : ''}`);
  return { profile: p, secs, lat, errors, samples, failedSessions };
}

/** Completions per second of `op` (all operations when omitted) in the timed window. */
export function opsPerSec(r: MixResult, op?: Op): number {
  const n = op ? r.lat.get(op)!.length : [...r.lat.values()].reduce((a, xs) => a + xs.length, 0);
  return n / r.secs;
}

export const p50 = (r: MixResult, op: Op) => percentile(r.lat.get(op)!, 0.5);
export const p99 = (r: MixResult, op: Op) => percentile(r.lat.get(op)!, 0.99);
