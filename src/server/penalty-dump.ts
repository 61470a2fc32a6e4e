/**
 * `sealadm penalty` across processes: anvil's PENALTY-DUMP. Dovecot's one
 * anvil holds the auth penalties; Sealmail's live in the auth process (root
 * master), which the master asks over IPC, or are relayed through the
 * master between service pool processes (PenaltyRelay), whose record of
 * the changes it replays.
 */
import type { ChildProcess } from 'node:child_process';
import { AuthPenalty, type PenaltyRow } from '../auth/penalty.js';
import { askChild, childAnswered } from './child-ask.js';

export type PenaltyDumpMessage =
  /** master → auth process: its penalty rows */
  | { t: 'penalty-dump'; id: number }
  | { t: 'penalty-dumped'; id: number; rows: PenaltyRow[] };

/** The auth process's rows (none when it is gone or silent). */
export function askPenaltyDump(child: ChildProcess): Promise<PenaltyRow[]> {
  return askChild<PenaltyRow[]>(child, (id) => ({ t: 'penalty-dump', id } satisfies PenaltyDumpMessage), []);
}

export function penaltyDumpAnswered(id: number, rows: PenaltyRow[]): void {
  childAnswered(id, rows);
}

/** The rows the changes a master relayed add up to. */
export function replayPenalties(changes: { op: 'failed' | 'succeeded'; ip: string; now: number }[]): PenaltyRow[] {
  const p = new AuthPenalty();
  for (const c of changes) p.apply(c.op, c.ip, c.now);
  return p.dump();
}
