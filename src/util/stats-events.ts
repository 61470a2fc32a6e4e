/**
 * Dovecot's named events as the stats service counts them (lib/lib-event.c:
 * an event has a name, fields, and a duration from its creation to its
 * sending), on the side of the process where they happen: a session calls
 * statsEvent() when a command, a login or a delivery finishes. Nothing is
 * kept unless the process was told to report (reportStatsTo(): only when
 * the configuration has `metric {}` sections), so a server without metrics
 * pays one comparison per event. Events with the same name and fields are
 * folded into one entry (count, and each duration for the histograms) and
 * sent to the master in a batch every FLUSH_MS, or sooner when BATCH_MAX
 * events are waiting: one IPC message per batch, never one per command.
 * The master (server/stats-metrics.ts) applies the `metric {}` filters.
 */

/** One folded entry: `durations` holds each event's duration in microseconds (their count is the count). */
export interface StatsEntry { name: string; fields: Record<string, string | number>; durations: number[] }
export type StatsBatch = StatsEntry[];

const FLUSH_MS = 200;
const BATCH_MAX = 512;

let sink: ((batch: StatsBatch) => void) | null = null;
let pending = new Map<string, StatsEntry>();
let waiting = 0;
let timer: NodeJS.Timeout | null = null;

/** Report the events of this process to `send` (the IPC to the master); null stops reporting. */
export function reportStatsTo(send: ((batch: StatsBatch) => void) | null): void {
  sink = send;
  if (!send) { pending = new Map(); waiting = 0; }
}

/** True when events are kept: a caller may skip building fields otherwise. */
export const statsWanted = (): boolean => sink !== null;

/** The event `name` finished now; `startNs` is process.hrtime.bigint() at its start. */
export function statsEvent(name: string, fields: Record<string, string | number>, startNs: bigint): void {
  if (!sink) return;
  const us = Number((process.hrtime.bigint() - startNs) / 1000n);
  const key = `${name}\0${JSON.stringify(fields)}`;
  const e = pending.get(key);
  if (e) e.durations.push(us); else pending.set(key, { name, fields, durations: [us] });
  if (++waiting >= BATCH_MAX) flushStats();
  else if (!timer) { timer = setTimeout(flushStats, FLUSH_MS); timer.unref(); }
}

/** Send what is waiting now (also before a process retires or exits). */
export function flushStats(): void {
  if (timer) { clearTimeout(timer); timer = null; }
  if (!sink || waiting === 0) return;
  const batch = [...pending.values()];
  pending = new Map();
  waiting = 0;
  sink(batch);
}
