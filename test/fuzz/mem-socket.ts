/**
 * An in-memory socket for driving real session objects without the
 * network (the bulk of the fuzz cases): what the session writes is
 * collected, what the test pushes is what the session reads, and `gone`
 * tells whether the session ended or destroyed its side.
 */
import { Duplex } from 'node:stream';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { tempDir } from '../helpers/tmp.js';

/**
 * A temp dir in memory (/dev/shm) when there is one: the fuzz cases store
 * thousands of messages and scripts, each fsynced, and a disk shared with a
 * loaded machine would make that the cost of the whole test.
 */
export function memTempDir(t: TestContext, label: string): string {
  if (!existsSync('/dev/shm')) return tempDir(t, label);
  const dir = mkdtempSync(`/dev/shm/${label}-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface MemSocket {
  sock: Duplex;
  out: Buffer[];
  text(): string;
  gone(): boolean;
}

export function memSocket(): MemSocket {
  const out: Buffer[] = [];
  let ended = false;
  const sock = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) { out.push(chunk); cb(); },
    final(cb) { ended = true; cb(); },
  });
  (sock as unknown as { setNoDelay(): void }).setNoDelay = () => undefined;
  return { sock, out, text: () => Buffer.concat(out).toString('latin1'), gone: () => ended || sock.destroyed };
}

/** Lets every pending callback, promise and I/O completion of the session run once. */
export function settle(): Promise<void> { return new Promise((r) => setImmediate(r)); }

/** Waits (bounded) until `cond` holds; false when the deadline passed first. */
export async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) { if (Date.now() > end) return false; await new Promise((r) => setTimeout(r, 2)); }
  return true;
}

/** Exceptions that escape every fault boundary while `fn` runs (the test fails if any). */
export async function escapes<T>(fn: () => Promise<T>): Promise<{ value: T; escaped: unknown[] }> {
  const escaped: unknown[] = [];
  const onErr = (e: unknown) => escaped.push(e);
  process.on('uncaughtException', onErr);
  process.on('unhandledRejection', onErr);
  try { return { value: await fn(), escaped }; } finally {
    process.off('uncaughtException', onErr);
    process.off('unhandledRejection', onErr);
  }
}

export function rnd(n: number): number { return Math.floor(Math.random() * n); }

/** Bit flips, inserted/deleted bytes, protocol metacharacters, huge numbers, cuts: a valid dialogue made hostile. */
export function mutate(s: Buffer, specials: string[]): Buffer {
  let b = s;
  // splices on Buffers, not byte arrays: the dialogues carry 5,000-byte lines and this runs 100,000 times
  const splice = (at: number, del: number, ins: Buffer) => { b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at + del)]); };
  for (let k = 0, n = 1 + rnd(4); k < n; k++) {
    const op = rnd(7);
    const i = rnd(b.length + 1);
    if (op === 0 && b.length) { const at = Math.min(i, b.length - 1); splice(at, 1, Buffer.from([b[at] ^ (1 << rnd(8))])); }
    else if (op === 1) splice(i, 0, Buffer.from([rnd(256)]));
    else if (op === 2 && b.length) splice(i, 1, Buffer.alloc(0));
    else if (op === 3) splice(i, 0, Buffer.from(specials[rnd(specials.length)], 'latin1'));
    else if (op === 4) splice(i, 0, Buffer.from(String([4294967295, 18446744073709551616, -1, 0, 99999999999][rnd(5)])));
    else if (op === 5 && b.length) { const j = rnd(b.length); splice(i, 0, Buffer.from(b.subarray(j, j + rnd(40)))); }
    else b = b.subarray(0, Math.min(b.length, i));
  }
  return b;
}

/** Random bytes, mostly printable, with line ends sprinkled in. */
export function randomInput(max = 120): Buffer {
  return Buffer.from(Array.from({ length: rnd(max) }, () => { const r = rnd(10); return r < 6 ? 32 + rnd(95) : r < 8 ? (rnd(2) ? 10 : 13) : rnd(256); }));
}
