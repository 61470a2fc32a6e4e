/**
 * Password verification throughput on the hash worker pool (BLF-CRYPT cost 5
 * and 10, SHA512-CRYPT 5000 rounds), Dovecot's `doveadm pw -t` beside it
 * (one process per check, so it includes process start), and the longest
 * event-loop stall while 50 verifications run at once (goal: under 20 ms).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';
import { hashPassword, verifyPassword } from '../src/auth/schemes/index.js';
import { findTool } from '../test/helpers/tools.js';
import type { BenchRow } from './harness.js';

async function rate(stored: string, n: number): Promise<number> {
  const pw = Buffer.from('summersun');
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, () => verifyPassword(pw, stored, { defaultScheme: 'PLAIN', user: 'u' })));
  return n / ((performance.now() - t0) / 1000);
}

function doveadmRate(doveadm: string | null, stored: string, n: number): string {
  if (!doveadm) return 'doveadm not installed';
  const t0 = performance.now();
  for (let i = 0; i < n; i++) execFileSync(doveadm, ['pw', '-t', stored, '-p', 'summersun'], { stdio: 'ignore' });
  return `${(n / ((performance.now() - t0) / 1000)).toFixed(0)} checks/s (1 core, incl. process start)`;
}

export default async function bench(): Promise<BenchRow[]> {
  const doveadm = findTool('doveadm');
  const rows: BenchRow[] = [];
  const cases: [string, string, number][] = [
    ['BLF-CRYPT cost 5', await hashPassword('BLF-CRYPT', Buffer.from('summersun'), { rounds: 5 }), 200],
    ['BLF-CRYPT cost 10', await hashPassword('BLF-CRYPT', Buffer.from('summersun'), { rounds: 10 }), 20],
    ['SHA512-CRYPT 5000 rounds', await hashPassword('SHA512-CRYPT', Buffer.from('summersun')), 200],
  ];
  for (const [name, stored, n] of cases) {
    rows.push({ name: `verify ${name}`, sealmail: `${(await rate(stored, n)).toFixed(0)} checks/s (worker pool)`, dovecot: doveadmRate(doveadm, stored, Math.min(n, 20)) });
  }
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await rate(cases[1][1], 50);
  h.disable();
  const stallMs = h.max / 1e6;
  rows.push({ name: 'longest event-loop stall, 50 concurrent BLF-CRYPT cost 10', sealmail: `${stallMs.toFixed(1)} ms`, note: `goal < 20 ms: ${stallMs < 20 ? 'met' : 'NOT met'}` });
  return rows;
}
