/**
 * `npm run bench -- consistency`: the randomized multi-session consistency
 * tester (test/helpers/imap-consistency.ts) for longer than CI runs it —
 * CONSISTENCY_BENCH_OPS commands (default 20,000) per server against the real
 * Dovecot, Sealmail with one IMAP process and Sealmail with two (where changes
 * cross processes through the Maildir and the MODSEQ file). A row per server:
 * commands per second and the number of inconsistencies (0 expected; the
 * first ones are printed to stderr with the seed).
 */
import type { TestContext } from 'node:test';
import type { BenchRow } from './harness.js';
import { setupDovecot } from '../test/helpers/dovecot.js';
import { startSealmail } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import { runConsistency } from '../test/helpers/imap-consistency.js';

const OPS = Number(process.env.CONSISTENCY_BENCH_OPS ?? 20_000);
const LIMITS = 'mail_max_userip_connections = 100\n';

export default async function bench(): Promise<BenchRow[]> {
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  const seed = Number(process.env.CONSISTENCY_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rows: BenchRow[] = [];
  const run = async (name: string, port: number) => {
    const t0 = Date.now();
    const r = await runConsistency({ port, user: 'bob@example.org', password: 'pass', name, seed, operations: OPS, strictModseq: false });
    if (r.errors.length) process.stderr.write(`${r.report.slice(0, 20_000)}\n`);
    return `${Math.round(r.commands / ((Date.now() - t0) / 1000))} cmds/s, ${r.errors.length} inconsistencies, ${r.modseqLag.length} stale MODSEQs`;
  };
  try {
    const port = await freePort();
    const dv = setupDovecot(fakeT, { start: true, protocols: 'imap', extraConf: `disable_plaintext_auth = no\n${LIMITS}service imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
    const dovecot = dv ? await run('Dovecot', port) : 'Dovecot not installed';
    for (const procs of [1, 2]) {
      const pool = `service imap-login {\n  process_min_avail = ${procs}\n}\nservice imap {\n  process_min_avail = ${procs}\n}\n`;
      const srv = await startSealmail(fakeT, { extraConf: `${LIMITS}${pool}` });
      rows.push({ name: `consistency: ${OPS} random commands, 10 sessions, ${procs} IMAP process${procs > 1 ? 'es' : ''} (seed ${seed})`, sealmail: await run(`Sealmail (${procs})`, srv.imapPort), dovecot, note: '0 inconsistencies expected' });
    }
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
  return rows;
}
