/**
 * A backtracking Sieve :regex (issue: hostile input): the user's script has
 * `^(a+)+$`, `((a*)*|b)*c` and `^(a|aa|a{1,3})+(a+)+b` against a 5,000-byte
 * Subject. Sealmail: time per LMTP delivery (beside the same delivery with a
 * plain `keep;` script), and while SIEVE_BENCH_N (10) such deliveries run
 * back to back, the worst latency of NOOP on an established IMAP session and
 * of a new IMAP connection's greeting (the master's hand-off). Pigeonhole:
 * sieve-test on the same script and message (wall time of the process, and
 * with `keep;` for its start-up cost). Goal: bounded per delivery, NOOP
 * answered in under 100 ms throughout.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startSealmail } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import { mailIds } from '../test/helpers/dovecot.js';
import { lmtpDeliver } from '../test/helpers/lmtp-kill.js';
import type { BenchRow } from './harness.js';

const N = Number(process.env.SIEVE_BENCH_N ?? 10);
const HOSTILE = `require ["regex", "fileinto"];
if header :regex "Subject" "^(a+)+$" { fileinto "X1"; }
if header :regex "Subject" "((a*)*|b)*c" { fileinto "X2"; }
if header :regex "Subject" "^(a|aa|a{1,3})+(a+)+b" { fileinto "X3"; }
`;
const message = (i: number) => Buffer.from(`From: alice@example.net\r\nTo: john@example.org\r\nSubject: ${'a'.repeat(5000)}!\r\nMessage-ID: <rx${i}@example.net>\r\n\r\nhello\r\n`);

/** A minimal IMAP line client: send a tagged command, wait for its tagged reply. */
async function imapSession(port: number, user: string): Promise<{ cmd: (c: string) => Promise<void>; close: () => void }> {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  let waiting: { tag: string; done: () => void } | null = null;
  const greeted = new Promise<void>((r) => { waiting = { tag: '*', done: r }; });
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i); buf = buf.slice(i + 1);
      if (waiting && l.startsWith(`${waiting.tag} `)) { const w = waiting; waiting = null; w.done(); }
    }
  });
  sock.on('error', () => undefined);
  await greeted;
  let n = 0;
  const cmd = (c: string) => new Promise<void>((r) => { const tag = `b${++n}`; waiting = { tag, done: r }; sock.write(`${tag} ${c}\r\n`); });
  await cmd(`LOGIN ${user} pass`);
  return { cmd, close: () => sock.destroy() };
}

function greetingMs(port: number): Promise<number> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const s = net.connect(port, '127.0.0.1');
    s.on('data', () => { resolve(Number(process.hrtime.bigint() - t0) / 1e6); s.destroy(); });
    s.on('error', () => resolve(NaN));
  });
}

export default async function (): Promise<BenchRow[]> {
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  const rows: BenchRow[] = [];
  const { uid, gid } = mailIds();
  try {
    const lmtpPort = await freePort();
    const srv = await startSealmail(fakeT, {
      extraConf: `protocols = imap lmtp\nprotocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\nservice lmtp {\n  inet_listener lmtp {\n    port = ${lmtpPort}\n  }\n}\n`,
      beforeStart: (dir) => {
        for (const [u, script] of [['hostile@example.org', HOSTILE], ['plain@example.org', 'keep;\n']]) {
          const home = join(dir, 'home', u);
          mkdirSync(home, { recursive: true });
          writeFileSync(join(home, '.dovecot.sieve'), script);
          if (process.getuid?.() === 0) for (const p of [home, join(home, '.dovecot.sieve')]) chownSync(p, uid, gid);
        }
      },
    });
    const deliverMs = async (user: string, i: number) => {
      const t0 = process.hrtime.bigint();
      if (!(await lmtpDeliver(lmtpPort, user, message(i), 120_000))) throw new Error(`delivery failed\n${srv.output()}`);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    await deliverMs('plain@example.org', -1); // warm-up (worker start, script cache)
    const plain: number[] = [];
    for (let i = 0; i < N; i++) plain.push(await deliverMs('plain@example.org', i));

    // hostile deliveries back to back, NOOPs and new connections probed all the while
    const session = await imapSession(srv.imapPort, 'bob@example.org');
    let running = true;
    const noops: number[] = [];
    const greetings: number[] = [];
    const prober = (async () => {
      while (running) {
        const t0 = process.hrtime.bigint();
        await session.cmd('NOOP');
        noops.push(Number(process.hrtime.bigint() - t0) / 1e6);
        greetings.push(await greetingMs(srv.imapPort));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const hostile: number[] = [];
    for (let i = 0; i < N; i++) hostile.push(await deliverMs('hostile@example.org', i));
    running = false;
    await prober;
    session.close();
    await srv.stop();

    const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const max = (a: number[]) => Math.max(...a.filter((x) => !Number.isNaN(x)));

    // Pigeonhole on the same script and message
    let pigeon = 'sieve-test not installed', pigeonNote = '';
    const st = spawnSync('sh', ['-c', 'command -v sieve-test'], { encoding: 'utf8' }).stdout.trim();
    if (st) {
      const dir = mkdtempSync(join(tmpdir(), 'sieve-bench-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      chmodSync(dir, 0o755);
      const ids = process.getuid?.() === 0 ? 'mail_uid = 65534\nmail_gid = 65534\nfirst_valid_uid = 1\n' : '';
      writeFileSync(join(dir, 'd.conf'), `${ids}mail_location = maildir:${dir}/Maildir\nbase_dir = ${dir}/run\nlog_path = /dev/stderr\nssl = no\n`);
      mkdirSync(join(dir, 'run'));
      writeFileSync(join(dir, 'h.sieve'), HOSTILE);
      writeFileSync(join(dir, 'k.sieve'), 'keep;\n');
      writeFileSync(join(dir, 'm.eml'), message(0));
      const time = (script: string) => {
        const ts: number[] = [];
        for (let i = 0; i < N; i++) {
          const t0 = process.hrtime.bigint();
          const r = spawnSync(st, ['-c', join(dir, 'd.conf'), join(dir, script), join(dir, 'm.eml')], { encoding: 'utf8' });
          if (r.status !== 0) throw new Error(`sieve-test: ${r.stderr}`);
          ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        return med(ts);
      };
      const h = time('h.sieve'), k = time('k.sieve');
      pigeon = `${h.toFixed(0)} ms`;
      pigeonNote = `; sieve-test ${h.toFixed(0)} ms per run with the regexes, ${k.toFixed(0)} ms with keep (process start included)`;
    }
    rows.push({
      name: `Sieve :regex backtracking patterns on a 5,000-byte header: LMTP delivery (median of ${N})`,
      sealmail: `${med(hostile).toFixed(0)} ms`, dovecot: pigeon,
      note: `Sealmail with keep: ${med(plain).toFixed(0)} ms${pigeonNote}`,
    });
    rows.push({
      name: 'Sieve :regex deliveries running: IMAP NOOP / new-connection greeting, worst case',
      sealmail: `${max(noops).toFixed(0)} ms / ${max(greetings).toFixed(0)} ms`,
      note: `goal < 100 ms; ${noops.length} NOOPs, median ${med(noops).toFixed(1)} ms; greeting median ${med(greetings).toFixed(1)} ms`,
    });
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
  return rows;
}
