/**
 * Issue 15's W1 sequence with Python's imaplib as the client, as a mail
 * program or a migration script drives a server: LOGIN, SELECT INBOX, then
 * twice: W1_N (500) APPENDs of ~5 KB one after another, `FETCH 1:* (UID
 * FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)`, `FETCH 1:* BODY.PEEK[]`,
 * `UID SEARCH TEXT needle`; the second round runs on twice the messages.
 * For a plain user and a mail-crypt P-521 user (ISPmail's settings: the
 * private key encrypted with the login password, given by the passdb),
 * Sealmail beside Dovecot 2.3 in the same run, each on a fresh server over
 * TCP; imaplib as shipped (Nagle on). Goals: total time Sealmail/Dovecot
 * ≤ 1.0 plain, ≤ 0.5 P-521. The per-APPEND latency view of the same client
 * is bench/w1-append.bench.ts.
 */
import { spawn } from 'node:child_process';
import type { TestContext } from 'node:test';
import { setupDovecot } from '../test/helpers/dovecot.js';
import { startSealmail } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import { CRYPT_CONF, CRYPT_PASSDB } from '../test/helpers/mail-crypt.js';
import { benchContext, type BenchRow } from './harness.js';

const N = Number(process.env.W1_N ?? 500);
const USER = 'w1@example.org';
export const PHASES = ['append', 'fetchMeta', 'fetchBody', 'search'] as const;
export type Phase = typeof PHASES[number];
/** Seconds per phase, per round (two rounds), and the sum. */
export interface W1Times { rounds: Record<Phase, number>[]; total: number }

/** The W1 client: argv port, n (0: log in and out only), user; prints the phase times (s) of both rounds as JSON. */
const CLIENT = `
import imaplib, sys, time, json
port, n, user = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
M = imaplib.IMAP4('127.0.0.1', port)
M.login(user, 'pass')
M.select('INBOX')
def ok(r, what):
    if r[0] != 'OK': raise SystemExit('%s failed: %r' % (what, r[1]))
    return r
line = b'filler text line of a five kilobyte message body for the W1 bench\\r\\n'
rounds = []
for rnd in range(2 if n else 0):
    t = {}
    t0 = time.perf_counter()
    for i in range(n):
        head = b'From: w1@example.net\\r\\nTo: ' + user.encode() + b'\\r\\nSubject: w1 %d.%d\\r\\nMessage-ID: <%d.%d@w1.bench>\\r\\n\\r\\n' % (rnd, i, rnd, i)
        body = head + (b'needle in this one\\r\\n' if i % 50 == 0 else b'') + line * ((5120 - len(head)) // len(line))
        ok(M.append('INBOX', None, None, body), 'APPEND')
    t['append'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ok(M.fetch('1:*', '(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)'), 'FETCH metadata')
    t['fetchMeta'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ok(M.fetch('1:*', '(BODY.PEEK[])'), 'FETCH bodies')
    t['fetchBody'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = ok(M.uid('SEARCH', 'TEXT', 'needle'), 'UID SEARCH')
    t['search'] = time.perf_counter() - t0
    found = len(r[1][0].split())
    if found != (rnd + 1) * ((n + 49) // 50): raise SystemExit('UID SEARCH TEXT found %d' % found)
    rounds.append(t)
M.logout()
print(json.dumps(rounds))
`;

function runClient(port: number, n: number): Promise<Record<Phase, number>[]> {
  return new Promise((resolve, reject) => {
    const p = spawn('python3', ['-c', CLIENT, String(port), String(n), USER], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`python3 imaplib W1 client exited ${code}: ${err.trim().split('\n').pop()}`))));
  });
}

const total = (rounds: Record<Phase, number>[]) => rounds.reduce((a, r) => a + PHASES.reduce((b, ph) => b + r[ph], 0), 0);

async function sealmailW1(t: TestContext, conf: string): Promise<W1Times> {
  const srv = await startSealmail(t, { passdb: CRYPT_PASSDB, extraConf: conf });
  await runClient(srv.imapPort, 0); // the first login makes a mail-crypt user's keys (Dovecot's come from doveadm, below)
  const rounds = await runClient(srv.imapPort, N);
  await srv.stop();
  return { rounds, total: total(rounds) };
}

async function dovecotW1(t: TestContext, conf: string, crypt: boolean): Promise<W1Times | null> {
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, passdb: CRYPT_PASSDB, extraConf: `${conf}disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
  if (!dv) return null;
  if (crypt) {
    const gen = dv.doveadm(['-o', 'plugin/mail_crypt_private_password=pass', 'mailbox', 'cryptokey', 'generate', '-u', USER, '-U']);
    if (gen.status !== 0) throw new Error(`doveadm cryptokey generate: ${gen.stderr}`);
  }
  await runClient(port, 0);
  const rounds = await runClient(port, N);
  dv.stop();
  return { rounds, total: total(rounds) };
}

export interface W1Pair { label: string; s: W1Times; d: W1Times | null }

export async function w1Bench(): Promise<{ pairs: W1Pair[]; rows: BenchRow[] }> {
  const { t, cleanup } = benchContext();
  try {
    const pairs: W1Pair[] = [];
    for (const [label, conf] of [['plain', ''], ['mail-crypt P-521', CRYPT_CONF.replace('prime256v1', 'secp521r1')]] as const) {
      const d = await dovecotW1(t, conf, conf !== '');
      const s = await sealmailW1(t, conf);
      pairs.push({ label, s, d });
    }
    const secs = (x: number) => `${x.toFixed(2)} s`;
    const phases = (w: W1Times) => PHASES.map((ph) => w.rounds.map((r) => r[ph].toFixed(2)).join('+')).join(' / ');
    const rows = pairs.map(({ label, s, d }) => ({
      name: `W1 (imaplib): 2 × (${N} APPEND, FETCH meta, FETCH bodies, UID SEARCH TEXT), ${label} user, total`,
      sealmail: `${secs(s.total)} (${phases(s)} s)`,
      dovecot: d ? `${secs(d.total)} (${phases(d)} s)` : 'not installed',
      note: d ? `ratio ${(s.total / d.total).toFixed(2)} (goal ≤ ${label === 'plain' ? '1.0' : '0.5'}); phases: APPEND / FETCH meta / FETCH bodies / SEARCH, round 1+2` : '',
    }));
    return { pairs, rows };
  } finally {
    await cleanup();
  }
}

export default async function w1SequenceBench(): Promise<BenchRow[]> {
  return (await w1Bench()).rows;
}
