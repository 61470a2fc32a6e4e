/**
 * A supervised pool of service processes, as Dovecot's master runs every
 * service (service-process.c, service-monitor.c). The master keeps the
 * listening sockets (TCP and unix) and hands each accepted connection, still
 * unread, to one process of the pool over the IPC channel (Node's documented
 * socket hand-off, which carries unix-socket connections too), least-loaded
 * first; the process does TLS and the whole session.
 *
 * Supervision: a process that dies is logged as Dovecot's master logs it
 * (`service(lmtp): child 1234 killed with signal 9`, `… returned error 89
 * (Fatal failure)`) and replaced at once; one that dies before it was ready
 * is restarted after a throttle that doubles up to a minute, as Dovecot's
 * service_monitor_throttle does. A connection never sees a close because no
 * process is ready (start-up, a replacement under way): it waits in a
 * bounded queue and is handed over the moment a process says it is ready.
 * Only when that queue is full is a connection dropped, with the master's
 * warning (Dovecot: the kernel's listen backlog overflows). A hand-off is
 * confirmed: the master keeps its descriptor until the process says it took
 * the connection (before reading or writing it), so one sent to a process
 * killed in between goes, still unread, to the next process (in Dovecot the
 * kernel keeps it in the listen queue: a dead process never accepted it).
 *
 * Processes are forked after the master dropped root, so they never hold
 * privileges; they inherit the master's log descriptors (logger.ts). A
 * process exits when the master's IPC channel goes away, so `kill -9` of
 * the master never leaves orphans serving a half-dead server.
 *
 * What stays shared across processes goes through the master: the per-IP
 * auth penalty (Dovecot's one anvil: every change a process reports is
 * replayed in every other process of every pool, and a new process gets the
 * changes so far), and, for IMAP and ManageSieve, the connection counts
 * (connection-table.ts): each hand-off takes a slot, a process asks before a
 * login becomes a session and reports every connection's end.
 *
 * `service {}` settings (serviceProcessCount): `process_min_avail` is the
 * number of processes (0 = one; imap-login and lmtp: one per core),
 * capped by `process_limit`. `client_limit`
 * and `service_count` are the connection limits of connection-limits.ts;
 * `idle_kill` and `vsz_limit` are accepted without effect (a fixed pool
 * has no idle processes to end; V8 reserves more address space than
 * Dovecot's 256 MB default, so an address-space limit would stop Node
 * from starting).
 *
 * Reload (SIGHUP, reload()): a new generation of processes is started with
 * the re-read tree; once every one is ready it takes all new connections,
 * and the old processes, which get none any more, serve their sessions to
 * the end and are then told to exit, as Dovecot's old processes keep
 * their clients after a reload.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism, constants } from 'node:os';
import type { Socket } from 'node:net';
import type { DovecotConfig } from '../config/settings.js';
import { logFdsForChild, type Logger } from '../log/logger.js';
import type { ListenerSpec } from './listeners.js';
import type { ConfigFilesSnapshot } from '../config/privileged-files.js';
import type { Admission } from '../config/connection-limits.js';
import type { ConnectionTable } from './connection-table.js';
import type { StatsBatch } from '../util/stats-events.js';
import { ingestStats } from './stats-metrics.js';
import type { UserConcurrency } from '../lmtp/user-concurrency.js';
import { flushAnswered, type CacheFlushMessage } from './auth-cache-flush.js';
import { takeChildError, type LogErrorMessage } from '../log/log-error-buffer.js';

export type PenaltyChange = { op: 'failed' | 'succeeded'; ip: string; now: number };

/** Messages between the master and a service process. */
export type WorkerMessage =
  | { t: 'init'; files: ConfigFilesSnapshot; penalties: PenaltyChange[] }
  | { t: 'conn'; spec: ListenerSpec; id: number; seq: number }
  /** process → master: hand-off `seq` arrived, before anything was read from or written to it */
  | { t: 'taken'; seq: number }
  /** master → process: end connection `id`, the login service is full; the verdict on a login */
  | { t: 'evict'; id: number }
  | { t: 'admitted'; id: number; verdict: Admission }
  /** process → master: connection `id` authenticated as `user`; connection `id` ended */
  | { t: 'admit'; id: number; user: string }
  | { t: 'closed'; id: number }
  | ({ t: 'penalty' } & PenaltyChange)
  | { t: 'load'; sessions: number }
  /** LMTP process → master: a slot of lmtp_user_concurrency_limit for `user`? one let go; the master's answer */
  | { t: 'user-slot'; id: number; user: string; limit: number }
  | { t: 'user-slot-free'; user: string }
  | { t: 'user-slot-reply'; id: number; ok: boolean }
  /** master → process: sealadm kick: end connection `id` as Dovecot's imap ends its clients on SIGTERM */
  | { t: 'kick'; id: number }
  /** process → master: finished events for the `metric {}` counters (stats-metrics.ts) */
  | { t: 'stats'; batch: StatsBatch }
  /** sealadm auth cache flush (auth-cache-flush.ts) */
  | CacheFlushMessage
  /** process → master: a warning/error line, for sealadm log errors (log-error-buffer.ts) */
  | LogErrorMessage
  | { t: 'ready' }
  | { t: 'shutdown' };

/** Connections waiting for a process (start-up, replacement) before new ones are dropped. */
export const MAX_WAITING = 1024;
/** Penalty changes kept for processes started later (the oldest go first; an hour is the most they count). */
const MAX_PENALTY_LOG = 10_000;
/** Dovecot's SERVICE_STARTUP_FAILURE_THROTTLE_MIN_MSECS / _MAX_MSECS. */
const THROTTLE_MIN_MS = 2000;
const THROTTLE_MAX_MS = 60_000;

function count(config: DovecotConfig, service: string, key: string): number {
  const svc = config.services().find((s) => s.name === service);
  const raw = svc?.settings[key];
  const n = Number(raw ?? 0);
  if (!Number.isInteger(n) || n < 0) throw new Error(`service(${service}): ${key}: invalid number ${raw}`);
  return n;
}

/**
 * The services whose work is spread over every core when process_min_avail
 * is 0: imap-login (Dovecot's high-performance-mode advice) and lmtp (Dovecot
 * runs an lmtp process per connection; deliveries to one user from several
 * Postfix connections then run side by side as there).
 */
const PER_CORE = new Set(['imap-login', 'lmtp']);

/**
 * Processes for `service` (see header): process_min_avail, 0 meaning one
 * (imap-login and lmtp: one per core), never more than process_limit
 * (0 = default_process_limit).
 */
export function serviceProcessCount(config: DovecotConfig, service: string): number {
  const min = count(config, service, 'process_min_avail');
  const want = min || (PER_CORE.has(service) ? availableParallelism() : 1);
  const limit = count(config, service, 'process_limit') || Number(config.get('default_process_limit') || 100);
  return Math.max(1, Math.min(want, limit));
}

/** The penalty changes every process must know, in order (a new process replays them). */
export class PenaltyRelay {
  private readonly pools = new Set<ServicePool>();
  private readonly log: PenaltyChange[] = [];

  join(pool: ServicePool): void { this.pools.add(pool); }

  /** Changes so far, compacted: an hour-old failure no longer counts (penalty.ts PENALTY_FORGET_MS). */
  get changes(): PenaltyChange[] {
    const horizon = Date.now() - 3_600_000;
    while (this.log.length && this.log[0].now < horizon) this.log.shift();
    return [...this.log];
  }

  relay(change: PenaltyChange, from: ChildProcess): void {
    this.log.push(change);
    if (this.log.length > MAX_PENALTY_LOG) this.log.splice(0, this.log.length - MAX_PENALTY_LOG);
    for (const p of this.pools) p.tell({ t: 'penalty', ...change }, from);
  }
}

interface Worker {
  child: ChildProcess;
  sessions: number;
  ready: boolean;
  /** Connections sent but not yet confirmed ('taken'): the master's copy stays open until then. */
  unconfirmed: Map<number, Waiting>;
}

interface Waiting { socket: Socket; spec: ListenerSpec }

export interface PoolOptions {
  /** The Dovecot service name used in log lines: imap, managesieve, lmtp, auth, quota-status. */
  service: string;
  count: number;
  script: string;
  args: string[];
  log: Logger;
  /** IMAP and ManageSieve: the master's connection counts. */
  table?: ConnectionTable | null;
  penalties?: PenaltyRelay;
  /** LMTP: the master's lmtp_user_concurrency_limit count over all its processes (user-concurrency.ts). */
  userSlots?: UserConcurrency;
}

export class ServicePool {
  private workers: Worker[] = [];
  /** Processes of an earlier configuration (reload): no new connections; asked to exit once idle. */
  private readonly retired = new Set<Worker>();
  private readonly waiting: Waiting[] = [];
  private stopping = false;
  private files: ConfigFilesSnapshot = { files: {}, globs: {} };
  private started = false;
  private throttleMs = new Map<number, number>();
  private lastDropWarning = 0;
  private seq = 1;

  constructor(private readonly o: PoolOptions) {
    o.penalties?.join(this);
  }

  get service(): string { return this.o.service; }

  /** Fork the processes and wait until each has loaded the configuration (from `files`, see privileged-files.ts). */
  async start(files: ConfigFilesSnapshot): Promise<void> {
    this.files = files;
    await Promise.all(Array.from({ length: this.o.count }, (_, i) => this.spawn(i)));
    this.started = true;
  }

  /** Send `m` to every ready process but `except` (the one that reported it). */
  tell(m: WorkerMessage, except?: ChildProcess): void {
    for (const w of this.all()) if (w.ready && w.child !== except && w.child.connected) w.child.send(m);
  }

  private all(): Worker[] { return [...this.workers.filter(Boolean), ...this.retired]; }

  private spawn(slot: number, gen: Worker[] = this.workers): Promise<void> {
    const { service, log } = this.o;
    // the log files the master opened as root, at fds 4… (logger.ts): an unprivileged process could not open them
    const logs = logFdsForChild(4);
    const child = fork(this.o.script, ['--service', service, ...this.o.args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...logs.stdio], env: { ...process.env, ...logs.env }, serialization: 'json' });
    const w: Worker = { child, sessions: 0, ready: false, unconfirmed: new Map() };
    gen[slot] = w;
    // a send to a process whose channel just closed (it died, 'exit' not seen yet) is an 'error' event: unlistened, it would end the master
    child.on('error', (e) => log.error(`service(${service}): child ${child.pid}: ${e.message}`));
    child.send({ t: 'init', files: this.files, penalties: this.o.penalties?.changes ?? [] } satisfies WorkerMessage);
    return new Promise<void>((resolve, reject) => {
      child.on('message', (m: WorkerMessage) => {
        if (m.t === 'ready') {
          w.ready = true;
          this.throttleMs.delete(slot);
          if (this.started && gen === this.workers) log.info(`${service}: ${this.pids.length} worker processes (${this.pids.join(' ')})`);
          this.drain();
          resolve();
        }
        else if (m.t === 'load') { w.sessions = m.sessions; this.retireIfIdle(w); }
        else if (m.t === 'taken') { w.unconfirmed.get(m.seq)?.socket.destroy(); w.unconfirmed.delete(m.seq); this.retireIfIdle(w); } // the process holds its own descriptor now
        else if (m.t === 'admit') child.send({ t: 'admitted', id: m.id, verdict: this.o.table?.admit(m.id, m.user) ?? 'ok' } satisfies WorkerMessage);
        else if (m.t === 'closed') this.o.table?.close(m.id);
        else if (m.t === 'penalty') this.o.penalties?.relay({ op: m.op, ip: m.ip, now: m.now }, child);
        else if (m.t === 'user-slot') child.send({ t: 'user-slot-reply', id: m.id, ok: this.o.userSlots?.take(m.user, m.limit, w) ?? true } satisfies WorkerMessage);
        else if (m.t === 'user-slot-free') this.o.userSlots?.release(m.user, w);
        else if (m.t === 'stats') ingestStats(m.batch);
        else if (m.t === 'auth-cache-flushed') flushAnswered(m.id, m.keys);
        else takeChildError(m);
      });
      child.on('exit', (code, sig) => {
        const wasReady = w.ready;
        w.ready = false;
        this.retired.delete(w);
        this.o.table?.closeOwner(w); // its connections died with it
        this.o.userSlots?.releaseOwner(w); // …and its deliveries
        // …but not those it never took: sent while it was dying, they go to the next process, unread
        const untaken = [...w.unconfirmed.values()].filter((c) => !c.socket.destroyed);
        w.unconfirmed.clear();
        if (this.stopping) for (const c of untaken) c.socket.destroy();
        else { this.waiting.unshift(...untaken); this.drain(); }
        if (!this.stopping && gen === this.workers && gen[slot] === w) {
          // Dovecot's service_process_log_status_error(): nothing for a clean exit
          const signo = sig ? osSignal(sig) : 0;
          if (sig) log.error(`service(${service}): child ${child.pid} killed with signal ${signo}`);
          else if (code) log.error(`service(${service}): child ${child.pid} returned error ${code}${code === 89 ? ' (Fatal failure)' : ''}`);
          if (this.started) {
            const delay = wasReady ? 0 : this.throttle(slot);
            setTimeout(() => void this.spawn(slot).catch(() => undefined), delay);
          }
        }
        reject(new Error(`service(${service}): child ${child.pid} exited during start-up (${sig ?? `exit ${code}`})`));
      });
    });
  }

  /** A process that died before it was ready waits longer each time (Dovecot's service_monitor_throttle). */
  private throttle(slot: number): number {
    const ms = this.throttleMs.get(slot) ?? THROTTLE_MIN_MS;
    this.throttleMs.set(slot, Math.min(ms * 2, THROTTLE_MAX_MS));
    this.o.log.error(`service(${this.o.service}): command startup failed, throttling for ${(ms / 1000).toFixed(3)} secs`);
    return ms;
  }

  private ready(): Worker | undefined {
    let best: Worker | undefined;
    for (const w of this.workers) if (w?.ready && w.child.connected && (!best || w.sessions < best.sessions)) best = w;
    return best;
  }

  /** Hand an accepted, unread connection to the least-loaded ready process; with none ready it waits. */
  dispatch(socket: Socket, spec: ListenerSpec): void {
    if (this.stopping) { socket.destroy(); return; }
    const to = this.ready();
    if (to && !this.waiting.length) { this.handTo(to, socket, spec); return; }
    if (this.waiting.length >= MAX_WAITING) {
      const now = Date.now();
      if (now - this.lastDropWarning >= 1000) {
        this.lastDropWarning = now;
        this.o.log.warn(`service(${this.o.service}): ${MAX_WAITING} connections waiting for a process, client connections are being dropped`);
      }
      socket.destroy();
      return;
    }
    this.waiting.push({ socket, spec });
    if (to) this.drain();
  }

  private drain(): void {
    for (let to = this.ready(); to && this.waiting.length; to = this.ready()) {
      const { socket, spec } = this.waiting.shift()!;
      if (socket.destroyed) continue;
      this.handTo(to, socket, spec);
    }
  }

  private handTo(to: Worker, socket: Socket, spec: ListenerSpec): void {
    to.sessions++; // until the process reports its own count
    const ip = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');
    const table = this.o.table;
    const id = table ? table.open({ rip: ip(socket.remoteAddress), lip: ip(socket.localAddress) }, () => {
      if (to.child.connected) to.child.send({ t: 'evict', id } satisfies WorkerMessage);
    }, to) : 0;
    // keepOpen: the master's descriptor stays open until the process confirms (a process killed after
    // it was chosen never takes the connection: it waits for the next process instead of being lost)
    const seq = this.seq++;
    to.unconfirmed.set(seq, { socket, spec });
    to.child.send({ t: 'conn', spec, id, seq } satisfies WorkerMessage, socket, { keepOpen: true }, (e) => {
      if (!e) return;
      this.o.log.error(`service(${this.o.service}): handing a connection to child ${to.child.pid}: ${e.message}`);
      if (id) table?.close(id);
      if (!to.unconfirmed.delete(seq)) return; // already re-queued by its exit
      if (!socket.destroyed) { this.waiting.unshift({ socket, spec }); this.drain(); }
    });
  }

  get pids(): number[] { return this.workers.filter(Boolean).map((w) => w.child.pid!).filter(Boolean); }

  /** With the processes of earlier configurations still serving their sessions (signals, sealadm who). */
  get allPids(): number[] { return this.all().map((w) => w.child.pid!).filter(Boolean); }

  /**
   * Reload: start `count` processes with `files` (the re-read tree); when
   * all are ready they replace the current ones, which finish their
   * sessions and exit (retireIfIdle). Should one fail to start, the new
   * ones are ended and the current ones go on (the caller logs why).
   */
  async reload(count: number, files: ConfigFilesSnapshot): Promise<void> {
    const gen: Worker[] = [];
    const before = this.files;
    this.files = files;
    try {
      await Promise.all(Array.from({ length: count }, (_, i) => this.spawn(i, gen)));
    } catch (e) {
      this.files = before;
      for (const w of gen) w?.child.kill('SIGKILL');
      throw e;
    }
    if (this.stopping) { for (const w of gen) w.child.kill('SIGKILL'); return; }
    const old = this.workers.filter(Boolean);
    this.workers = gen;
    this.started = true;
    this.o.log.info(`${this.o.service}: ${this.pids.length} worker processes (${this.pids.join(' ')})`);
    for (const w of old) { this.retired.add(w); this.retireIfIdle(w); }
    this.drain();
  }

  /** A retired process with no session left and no hand-off in flight is asked to exit. */
  private retireIfIdle(w: Worker): void {
    if (!this.retired.has(w) || w.sessions > 0 || w.unconfirmed.size || !w.child.connected) return;
    w.child.send({ t: 'shutdown' } satisfies WorkerMessage);
  }

  /** sealadm kick: end the session the table knows as `id`, in the process `owner` holding it. */
  kick(owner: unknown, id: number): boolean {
    const w = this.all().find((x) => x === owner);
    if (!w?.child.connected) return false;
    w.child.send({ t: 'kick', id } satisfies WorkerMessage);
    return true;
  }

  /** Every process of the pool, retired ones included (sealadm auth cache flush asks each). */
  children(): ChildProcess[] {
    return this.all().map((w) => w.child);
  }

  /** The pid of a process the table names as owner (sealadm who). */
  pidOf(owner: unknown): number {
    return this.all().find((x) => x === owner)?.child.pid ?? 0;
  }

  /** Ask every process to finish its sessions and exit; kill what lingers. */
  async close(): Promise<void> {
    this.stopping = true;
    for (const { socket } of this.waiting.splice(0)) socket.destroy();
    await Promise.all(this.all().map((w) => new Promise<void>((r) => {
      if (w.child.exitCode !== null || w.child.signalCode !== null) { r(); return; }
      const t = setTimeout(() => w.child.kill('SIGKILL'), 5000);
      w.child.once('exit', () => { clearTimeout(t); r(); });
      if (w.child.connected) w.child.send({ t: 'shutdown' } satisfies WorkerMessage); else w.child.kill('SIGTERM');
    })));
  }
}

/** A signal's number, as Dovecot prints WTERMSIG(). */
function osSignal(sig: NodeJS.Signals): number {
  return (constants.signals as Record<string, number>)[sig] ?? 0;
}
