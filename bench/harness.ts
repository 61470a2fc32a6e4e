/**
 * Shared pieces of `npm run bench`: each bench/*.bench.ts exports a default
 * async function returning rows; run.ts prints them as one table, with
 * Dovecot's figure beside ours where Dovecot is installed.
 */
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
