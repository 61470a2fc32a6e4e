/**
 * The fuzz harness shared by every listener's fuzz test (the IMAP one,
 * test/imap/session/fuzz.test.ts, is its model):
 *
 * - `fuzzSessions`: the bulk — FUZZ_CASES (default 100,000) cases, each a
 *   fresh real session object over an in-memory socket fed either random
 *   bytes or a mutated valid dialogue, cut anywhere as TCP would; ten
 *   sessions run side by side. A case ends when the session has reacted
 *   and the client went away; it fails when an exception escapes the
 *   session's fault boundary, or when a batch takes longer than a hang
 *   bound (an event loop stalled by the input). Every 5,000 cases a fresh
 *   session must still answer.
 * - `fuzzSockets`: FUZZ_SOCKET_CASES (default 2,000) of the same inputs over
 *   real connections to one real server process, a few in parallel; each
 *   connection must be closed by the server once the client half-closes
 *   (bounded wait: a wedged process fails it).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import { memSocket, mutate, randomInput, rnd, settle } from './mem-socket.js';
import { setLogSink } from '../../src/log/logger.js';

export const CASES = Number(process.env.FUZZ_CASES ?? 100_000);
export const SOCKET_CASES = Number(process.env.FUZZ_SOCKET_CASES ?? 2_000);
const BATCH = 10;
/** A batch of cases slower than this is a hang, not a slow machine (a normal case takes well under a millisecond). */
const HANG_MS = 10_000;

export interface FuzzTarget {
  /** A new real session on this stream (greeting and all). */
  start(sock: Duplex): void;
  /** A valid dialogue, randomly assembled from the protocol's commands. */
  dialogue(): Buffer;
  /** Bytes that mean something to the protocol (separators, literal markers, escapes). */
  specials: string[];
  /** What a fresh session is sent, and the answer that proves it works. */
  probe: { send: string; expect: string };
}

export function fuzzInput(target: FuzzTarget): Buffer {
  return rnd(4) === 0 ? randomInput() : mutate(target.dialogue(), target.specials);
}

/** A fresh in-memory session answers the probe (bounded wait). */
export async function freshSessionAnswers(target: FuzzTarget): Promise<boolean> {
  const m = memSocket();
  target.start(m.sock);
  m.sock.push(Buffer.from(target.probe.send));
  const end = Date.now() + 10_000;
  while (!m.text().includes(target.probe.expect) && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  m.sock.destroy();
  return m.text().includes(target.probe.expect);
}

export async function fuzzSessions(t: TestContext, target: FuzzTarget, cases = CASES): Promise<void> {
  const escaped: unknown[] = [];
  const onErr = (e: unknown) => escaped.push(e);
  process.on('uncaughtException', onErr);
  process.on('unhandledRejection', onErr);
  t.after(() => { process.off('uncaughtException', onErr); process.off('unhandledRejection', onErr); });
  // a fault boundary that fires is a bug it contained: the fuzz fails on it too (protocol errors a
  // client caused are logged at Error level by Dovecot as well, and are only counted)
  const faults: string[] = [];
  const errorShapes = new Map<string, number>();
  setLogSink((line, level) => {
    if (level === 'info' || level === 'debug' || level === 'warning') return;
    if (/: Error: Internal error: |: Panic: /.test(line)) faults.push(line);
    const shape = line.replace(/\(.*?\)/, '(…)').slice(0, 60).replace(/[^ -~]/g, '?');
    errorShapes.set(shape, (errorShapes.get(shape) ?? 0) + 1);
  });
  t.after(() => setLogSink(null));
  let bytesOut = 0;
  let closedByServer = 0;
  let slowest = 0;
  const started = Date.now();
  // cases run BATCH at a time, side by side as a server's sessions do: one event-loop turn serves them all
  for (let c = 0; c < cases; c += BATCH) {
    const t0 = Date.now();
    const batch = Array.from({ length: Math.min(BATCH, cases - c) }, () => {
      const m = memSocket();
      const input = fuzzInput(target);
      target.start(m.sock);
      return { m, input, cut: rnd(input.length + 1) };
    });
    for (const { m, input, cut } of batch) m.sock.push(input.subarray(0, cut));
    await settle();
    for (const { m, input, cut } of batch) m.sock.push(input.subarray(cut));
    await settle();
    await settle();
    for (const { m } of batch) {
      if (m.gone()) closedByServer++;
      m.sock.destroy(); // the client goes away, possibly mid-command, mid-literal, mid-handshake
    }
    await settle();
    for (const { m } of batch) bytesOut += m.out.reduce((a, b) => a + b.length, 0);
    const ms = Date.now() - t0;
    slowest = Math.max(slowest, ms);
    const inputs = () => batch.map((b) => JSON.stringify(b.input.toString('latin1'))).join('\n');
    if (faults.length) assert.fail(`cases ${c}..${c + batch.length - 1} hit a fault boundary: ${faults[0]}\ninputs:\n${inputs()}`);
    if (escaped.length) assert.fail(`cases ${c}..${c + batch.length - 1} let an exception escape: ${escaped[0] instanceof Error ? escaped[0].stack : String(escaped[0])}\ninputs:\n${inputs()}`);
    assert.ok(ms < HANG_MS, `cases ${c}..${c + batch.length - 1} took ${ms} ms: an input stalls the session\ninputs:\n${inputs()}`);
    if (Math.floor((c + batch.length) / 5000) > Math.floor(c / 5000)) assert.ok(await freshSessionAnswers(target), `a fresh session answers after ${c + batch.length} cases`);
  }
  // let timers the cases started (auth failure delays, penalties) fire: their faults must be contained too
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(escaped.map(String), []);
  assert.ok(await freshSessionAnswers(target), 'a fresh session answers after the fuzzing');
  for (const [shape, n] of [...errorShapes].sort((x, y) => y[1] - x[1]).slice(0, 12)) t.diagnostic(`${n}× ${shape}`);
  t.diagnostic(`${cases} in-memory cases in ${((Date.now() - started) / 1000).toFixed(1)} s, ${bytesOut} bytes of replies, ${closedByServer} connections closed by the server, slowest batch of ${BATCH} ${slowest} ms`);
}

/** One connection: write the input, half-close, and wait (bounded) for the server to close its side. */
function socketCase(target: { port: number } | { path: string }, input: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const s: Socket = 'port' in target ? connect({ host: '127.0.0.1', port: target.port }) : connect(target.path);
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`the server did not close the connection after ${JSON.stringify(input.toString('latin1'))}`)); }, 30_000);
    s.on('data', () => undefined);
    s.on('error', () => undefined); // a reset by the server is a fine way to end
    s.on('close', () => { clearTimeout(timer); resolve(); });
    s.on('connect', () => { s.write(input); s.end(); });
  });
}

export async function fuzzSockets(t: TestContext, target: FuzzTarget, addr: { port: number } | { path: string }, cases = SOCKET_CASES, parallel = 8): Promise<void> {
  let next = 0;
  const started = Date.now();
  const workers = Array.from({ length: parallel }, async () => {
    while (next < cases) { next++; await socketCase(addr, fuzzInput(target)); }
  });
  await Promise.all(workers);
  t.diagnostic(`${cases} cases over real connections in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
