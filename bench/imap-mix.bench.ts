/**
 * The multi-client random mix (bench/imap-mix.ts) against Sealmail and
 * Dovecot 2.3 in the same run, on the same ISPmail-shaped configuration
 * (bench/ispmail-pair.ts: IMAPS, SQLite users, BLF-CRYPT, quota), with
 * mail_max_userip_connections raised on both so that 50 sessions of one
 * user are let in. The shared INBOX starts with MIX_MESSAGES (2,000)
 * messages, copies of one cached Maildir; the per-client users with 20.
 * Each profile runs MIX_SECS (30) seconds (at most MIX_MAX_OPS commands per
 * client) on each server, the servers alternating, the same seed for both.
 * Rows: per command p50/p99 and ops/s with the ratio Sealmail/Dovecot, and
 * per profile the total ops/s and the protocol errors of each server.
 */
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { benchContext, type BenchRow } from './harness.js';
import { benchUser, makeUserDb, replaceMaildir, startDovecotSide, startSealmailSide } from './ispmail-pair.js';
import { cachedMaildir } from './imap-server.bench.js';
import { errorCount, type ProtocolErrors } from './imap-driver.js';
import { OPS, opsPerSec, p50, p99, PROFILES, runMix, type MixResult, type Profile } from './imap-mix.js';
import { tempDir } from '../test/helpers/tmp.js';

const SECS = Number(process.env.MIX_SECS ?? 30);
const MAX_OPS = Number(process.env.MIX_MAX_OPS ?? 100_000);
const MESSAGES = Number(process.env.MIX_MESSAGES ?? 2000);
const SEED = Number(process.env.MIX_SEED ?? 15);
const log = (s: string) => process.stderr.write(`${s}\n`);

export interface MixPair { profile: Profile; s: MixResult; d: MixResult | null }

const fmtErrors = (e: ProtocolErrors, failed: number) => {
  const parts = (Object.entries(e) as [keyof ProtocolErrors, number][]).filter(([k, n]) => n && k !== 'expungeRace').map(([k, n]) => `${n} ${k}`);
  return `${parts.length ? parts.join(', ') : 'no protocol errors'}${failed ? `, ${failed} sessions refused` : ''}${e.expungeRace ? ` (${e.expungeRace} NO for a message expunged meanwhile)` : ''}`;
};
const ms = (x: number) => (Number.isNaN(x) ? '–' : `${x.toFixed(x < 10 ? 1 : 0)} ms`);

/** Both profiles on both servers; the raw results (for the goals table) and the rows. */
export async function mixBench(): Promise<{ pairs: MixPair[]; rows: BenchRow[] }> {
  const { t, cleanup } = benchContext();
  try {
    const dbDir = tempDir(t, 'sealmail-mixbench');
    chmodSync(dbDir, 0o755);
    const db = join(dbDir, 'mailserver.sqlite');
    const users = 2 + PROFILES.login10.clients;
    const conns = PROFILES.shared50.clients + PROFILES.login10.clients;
    makeUserDb(db, users);
    const shared = cachedMaildir(MESSAGES);
    const seal = await startSealmailSide(t, db, users, conns, false, conns);
    const dove = await startDovecotSide(t, db, users, conns, seal.srv.dir, 'performance', conns);
    replaceMaildir(seal.srv.dir, benchUser(1), shared);
    if (dove) replaceMaildir(dove.dv.dir, benchUser(1), shared);
    const pairs: MixPair[] = [];
    for (const profile of [PROFILES.shared50, PROFILES.login10]) {
      const opts = { tls: true, secs: SECS, maxOpsPerClient: MAX_OPS, seed: SEED, log };
      const s = await runMix(profile, { ...opts, port: seal.port, log: (x) => log(`Sealmail ${x}`) });
      const d = dove ? await runMix(profile, { ...opts, port: dove.port, log: (x) => log(`Dovecot ${x}`) }) : null;
      pairs.push({ profile, s, d });
    }
    const rows: BenchRow[] = [];
    for (const { profile, s, d } of pairs) {
      for (const op of OPS) {
        if (!s.lat.get(op)!.length && !d?.lat.get(op)!.length) continue;
        const fig = (r: MixResult) => `${ms(p50(r, op))} / ${ms(p99(r, op))}, ${opsPerSec(r, op).toFixed(1)}/s`;
        rows.push({
          name: `mix "${profile.name}": ${op} p50 / p99, ops/s`,
          sealmail: fig(s), dovecot: d ? fig(d) : 'not installed',
          note: d ? `ops/s ${(opsPerSec(s, op) / opsPerSec(d, op)).toFixed(2)}x, p99 ${(p99(s, op) / p99(d, op)).toFixed(2)}x` : '',
        });
      }
      rows.push({
        name: `mix "${profile.name}": all commands, ${s.secs.toFixed(0)} s window`,
        sealmail: `${opsPerSec(s).toFixed(1)} ops/s; ${fmtErrors(s.errors, s.failedSessions)}`,
        dovecot: d ? `${opsPerSec(d).toFixed(1)} ops/s; ${fmtErrors(d.errors, d.failedSessions)}` : 'not installed',
        note: d ? `throughput Sealmail/Dovecot ${(opsPerSec(s) / opsPerSec(d)).toFixed(2)}x; seed ${SEED}` : '',
      });
    }
    return { pairs, rows };
  } finally {
    await cleanup();
  }
}

/** Protocol errors (not counting the allowed expunge race) and refused sessions of one result. */
export const mixErrors = (r: MixResult) => errorCount(r.errors) + r.failedSessions;

export default async function imapMixBench(): Promise<BenchRow[]> {
  return (await mixBench()).rows;
}
