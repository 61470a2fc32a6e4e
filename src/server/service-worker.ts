/**
 * The service-process side of service-pool.ts: a process forked by the
 * master (after it dropped root) serves the connections the master hands
 * over, reports how many it holds (least-loaded hand-off), relays its auth
 * penalty changes and takes the others' (Dovecot's one anvil), for IMAP
 * and ManageSieve, asks the master's connection table before a login
 * becomes a session, and, for LMTP, takes lmtp_user_concurrency_limit's
 * slots from the master's count. It exits when the master's channel goes away (even
 * `kill -9` of the master): it never serves on alone.
 */
import type { Socket } from 'node:net';
import type { AuthPenalty } from '../auth/penalty.js';
import type { Admission, ConnectionSlot } from '../config/connection-limits.js';
import type { Logger } from '../log/logger.js';
import type { ListenerSpec } from './listeners.js';
import { guardAccept } from './faults.js';
import type { PenaltyChange, WorkerMessage } from './service-pool.js';
import { flushStats } from '../util/stats-events.js';
import { answerFlush } from './auth-cache-flush.js';
import { RemoteUserSlots, type UserSlotTaker } from '../lmtp/user-concurrency.js';

/** What a service process runs: IMAP, ManageSieve, or one of the delivery services. */
export interface HandedOffService {
  /** `slot`: the connection's place in the master's table (unused where the master keeps none). */
  acceptHandedOff(raw: Socket, spec: ListenerSpec, id: number, slot: ConnectionSlot): void;
  /** The master's table is full: end connection `id`. */
  evict?(id: number): void;
  /** sealadm kick: end connection `id` as a shutting-down process ends its clients. */
  kick?(id: number): void;
  /** LMTP: count lmtp_user_concurrency_limit with `taker` (the master's count over all LMTP processes). */
  useUserSlots?(taker: UserSlotTaker): void;
  /** This process's copy of the shared auth penalty. */
  readonly penalty?: AuthPenalty;
  close(): Promise<void>;
}

export function runServiceWorker(service: HandedOffService, log: Logger, penalties: PenaltyChange[]): void {
  // a master killed with -9 leaves a broken channel before 'disconnect' arrives: a failed send ends us quietly
  const send = (m: WorkerMessage) => { if (process.connected) process.send!(m, undefined, {}, (e) => { if (e) process.exit(0); }); };
  const penalty = service.penalty;
  if (penalty) {
    for (const c of penalties) penalty.apply(c.op, c.ip, c.now);
    penalty.onChange = (op, ip, now) => send({ t: 'penalty', op, ip, now });
  }
  const userSlots = new RemoteUserSlots((id, user, limit) => send({ t: 'user-slot', id, user, limit }), (user) => send({ t: 'user-slot-free', user }));
  service.useUserSlots?.(userSlots.take);
  let load = 0;
  const verdicts = new Map<number, (v: Admission) => void>();
  const slot = (id: number): ConnectionSlot => ({
    admit: (user) => new Promise<Admission>((resolve) => { verdicts.set(id, resolve); send({ t: 'admit', id, user }); }),
    release: () => { verdicts.get(id)?.('full'); verdicts.delete(id); send({ t: 'closed', id }); },
  });
  const accept = guardAccept(log, (s: Socket, spec: ListenerSpec, id: number) => {
    load++;
    send({ t: 'load', sessions: load });
    s.once('close', () => { load--; send({ t: 'load', sessions: load }); });
    service.acceptHandedOff(s, spec, id, slot(id));
  });
  let closing = false;
  const close = () => { if (closing) return; closing = true; flushStats(); void service.close().catch(() => undefined).finally(() => process.exit(0)); };
  process.on('message', (m: WorkerMessage, handle?: unknown) => {
    if (m.t === 'conn' && handle) { send({ t: 'taken', seq: m.seq }); accept(handle as Socket, m.spec, m.id); }
    else if (m.t === 'conn') { send({ t: 'taken', seq: m.seq }); send({ t: 'closed', id: m.id }); } // the socket was lost on the way
    else if (m.t === 'evict') service.evict?.(m.id);
    else if (m.t === 'kick') service.kick?.(m.id);
    else if (m.t === 'admitted') { verdicts.get(m.id)?.(m.verdict); verdicts.delete(m.id); }
    else if (m.t === 'penalty') penalty?.apply(m.op, m.ip, m.now);
    else if (m.t === 'user-slot-reply') userSlots.answered(m.id, m.ok);
    else if (m.t === 'auth-cache-flush') answerFlush(m, send);
    else if (m.t === 'shutdown') close();
  });
  // the master is gone (even kill -9): stop at once rather than serve on alone
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => undefined); // Ctrl-C reaches the whole group: the master decides
  process.on('SIGTERM', close);
  send({ t: 'ready' });
}
