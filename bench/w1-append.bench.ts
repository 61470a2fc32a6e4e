/**
 * Issue 15's W1-APPEND row: W1_N (500) APPENDs of ~W1_SIZE (5 KB) one after
 * another from Python's imaplib, Sealmail beside Dovecot 2.3 in the same
 * run, per-APPEND median and p99. imaplib writes the command line, waits for
 * the `+` continuation, then writes the literal and its CRLF as two separate
 * send()s: with Nagle on in the client (imaplib's default) that CRLF waits
 * for the server's ACK of the literal, so a server whose ACK is delayed
 * (delayed-ACK timer, 40 ms on Linux) stalls every APPEND. The same run
 * again with TCP_NODELAY set on the client's socket shows the server's own
 * time per APPEND.
 */
import { spawn } from 'node:child_process';
import type { TestContext } from 'node:test';
import { setupDovecot } from '../test/helpers/dovecot.js';
import { startSealmail } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import type { BenchRow } from './harness.js';

const N = Number(process.env.W1_N ?? 500);
const SIZE = Number(process.env.W1_SIZE ?? 5120);
const USER = 'bench@example.org';

/** imaplib as a mail client uses it: LOGIN, SELECT INBOX, then N APPENDs timed one by one (ms, JSON). */
const CLIENT = `
import imaplib, socket, sys, time, json
port, n, size, nodelay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1'
M = imaplib.IMAP4('127.0.0.1', port)
if nodelay: M.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
M.login(sys.argv[5], 'pass')
M.select('INBOX')
line = b'filler text line of a five kilobyte message body for the W1 bench\\r\\n'
head = b'From: w1@example.org\\r\\nTo: ' + sys.argv[5].encode() + b'\\r\\nSubject: w1\\r\\n\\r\\n'
body = head + line * ((size - len(head)) // len(line))
ts = []
for i in range(n):
    t0 = time.perf_counter()
    typ, data = M.append('INBOX', None, None, body)
    ts.append((time.perf_counter() - t0) * 1000)
    if typ != 'OK': raise SystemExit('APPEND failed: %r' % (data,))
M.logout()
print(json.dumps(ts))
`;

/** The per-APPEND times of one imaplib run against `port`. */
function runClient(port: number, nodelay: boolean, n = N): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const p = spawn('python3', ['-c', CLIENT, String(port), String(n), String(SIZE), nodelay ? '1' : '0', USER], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) { reject(new Error(`python3 imaplib client exited ${code}: ${err.trim().split('\n').pop()}`)); return; }
      resolve(JSON.parse(out) as number[]);
    });
  });
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

interface Stats { median: number; p99: number }
const stats = (ts: number[]): Stats => { const s = [...ts].sort((a, b) => a - b); return { median: pct(s, 0.5), p99: pct(s, 0.99) }; };
const fmt = (s: Stats) => `${s.median.toFixed(2)} / ${s.p99.toFixed(2)} ms`;

export default async function w1AppendBench(): Promise<BenchRow[]> {
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  try {
    const port = await freePort();
    const dv = setupDovecot(fakeT, { start: true, extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
    if (!dv) return [{ name: 'W1-APPEND', sealmail: 'skipped', dovecot: 'Dovecot not installed' }];
    const srv = await startSealmail(fakeT);
    // warm: the mailbox created, the server's processes started and their code paths compiled
    for (const p of [port, srv.imapPort]) await runClient(p, true, 20);
    const runs: { nodelay: boolean; d: Stats; s: Stats }[] = [];
    for (const nodelay of [false, true]) runs.push({ nodelay, d: stats(await runClient(port, nodelay)), s: stats(await runClient(srv.imapPort, nodelay)) });
    // what Nagle in the client costs per APPEND: the timer stall, if the server's ACK is delayed
    const nagle = (k: 'd' | 's') => `${(runs[0][k].median - runs[1][k].median).toFixed(1)} ms`;
    return runs.map(({ nodelay, d, s }) => ({
      name: `W1-APPEND: ${N} × ${(SIZE / 1024).toFixed(0)} KB APPEND, Python imaplib, ${nodelay ? 'client with TCP_NODELAY' : 'imaplib as is (Nagle on)'}: median / p99 per APPEND`,
      sealmail: fmt(s), dovecot: fmt(d),
      note: `ratio Sealmail/Dovecot: median ${(s.median / d.median).toFixed(2)}, p99 ${(s.p99 / d.p99).toFixed(2)}${nodelay ? '' : `; Nagle's cost (median, Nagle on − TCP_NODELAY): Sealmail ${nagle('s')}, Dovecot ${nagle('d')}`}`,
    }));
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}
