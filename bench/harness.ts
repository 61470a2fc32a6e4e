/**
 * Shared pieces of `npm run bench`: each bench/*.bench.ts exports a default
 * async function returning rows; run.ts prints them as one table, with
 * Dovecot's figure beside ours where Dovecot is installed.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import type { TestContext } from 'node:test';

export interface BenchRow {
  /** What was measured, e.g. "config load: 400-file tree". */
  name: string;
  /** Our figure, formatted with its unit ("12.3 ms", "850 logins/s"). */
  sealmail: string;
  /** Dovecot's figure on the same workload, or a reason it was not measured. */
  dovecot?: string;
  /** Optional goal or remark. */
  note?: string;
}

export type Bench = () => Promise<BenchRow[]>;

/** Median wall time of fn over n runs, in milliseconds. */
export async function medianMs(n: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/**
 * A stand-in for node:test's TestContext for the test helpers a bench uses
 * (startSealmail, setupDovecot, tempDir register their clean-ups with
 * `after`); `cleanup()` runs them, last registered first.
 */
export function benchContext(): { t: TestContext; cleanup: () => Promise<void> } {
  const fns: (() => unknown)[] = [];
  const t = { after: (fn: () => unknown) => { fns.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  return { t, cleanup: async () => { for (const fn of fns.splice(0).reverse()) await fn(); } };
}

/** The value at fraction p (0..1) of an ascending array (nearest rank). */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** One-line description of this machine and its load, for the bench's tables. */
export function machineLine(): string {
  return `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`;
}
