/**
 * Several IMAP processes, so sessions use every core (issue #6: "several
 * processes on all cores"). The master keeps the listening sockets and hands
 * each accepted connection, still unread, to one worker over the IPC channel
 * (Node's documented socket hand-off), least-loaded first; the worker does TLS
 * and the whole session. The store is already safe across processes
 * (dotlocked uidlist, change notification through the file system), which is
 * also what lets Dovecot and Sealmail share a Maildir.
 *
 * How many: `service imap-login { process_min_avail = N }` — the setting
 * Dovecot's "high-performance mode" uses for the number of login processes,
 * recommended there as the number of CPU cores. 0 (Dovecot's default) means
 * one per core here; 1 keeps everything in the master process.
 *
 * Workers are forked after the master dropped root, so they never hold
 * privileges. The auth penalty (Dovecot's anvil, one per server) is kept
 * consistent by relaying every change through the master, whose own copy
 * (ManageSieve's logins) is told of the workers' changes and tells them its own. A worker exits
 * when the master's IPC channel goes away, so `kill -9` of the master never
 * leaves orphans serving a half-dead server.
 *
 * Connection limits hold across workers because the master counts: each
 * hand-off takes a slot in its ConnectionTable (the login service's cap may
 * evict the oldest unauthenticated connection, wherever it lives), a worker
 * asks it before a login becomes a session (mail_max_userip_connections,
 * service imap's cap) and reports every connection's end.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import type { Socket } from 'node:net';
import type { DovecotConfig } from '../config/settings.js';
import { logFdsForChild, type Logger } from '../log/logger.js';
import type { ListenerSpec } from './listeners.js';
import type { ConfigFilesSnapshot } from '../config/privileged-files.js';
import type { AuthPenalty } from '../auth/penalty.js';
import type { Admission } from '../config/connection-limits.js';
import type { ConnectionTable } from './connection-table.js';

/** Messages between master and IMAP workers. */
export type WorkerMessage =
  | { t: 'init'; files: ConfigFilesSnapshot }
  | { t: 'conn'; spec: ListenerSpec; id: number }
  /** master → worker: end connection `id`, the login service is full; the verdict on a login */
  | { t: 'evict'; id: number }
  | { t: 'admitted'; id: number; verdict: Admission }
  /** worker → master: connection `id` authenticated as `user`; connection `id` ended */
  | { t: 'admit'; id: number; user: string }
  | { t: 'closed'; id: number }
  | { t: 'penalty'; op: 'failed' | 'succeeded'; ip: string; now: number }
  | { t: 'load'; sessions: number }
  | { t: 'ready' }
  | { t: 'shutdown' };

/** Number of IMAP processes the configuration asks for (see header). */
export function imapProcessCount(config: DovecotConfig): number {
  const svc = config.services().find((s) => s.name === 'imap-login');
  const n = Number(svc?.settings.process_min_avail ?? 0);
  if (!Number.isInteger(n) || n < 0) throw new Error(`service(imap-login): process_min_avail: invalid number ${svc?.settings.process_min_avail}`);
  return n === 0 ? availableParallelism() : n;
}

interface Worker { child: ChildProcess; sessions: number; ready: boolean }

export class ImapWorkerPool {
  private readonly workers: Worker[] = [];
  private stopping = false;

  constructor(
    private readonly count: number,
    private readonly script: string,
    private readonly args: string[],
    private readonly log: Logger,
    private readonly table: ConnectionTable,
  ) {}

  private files: ConfigFilesSnapshot = { files: {}, globs: {} };
  private started = false;

  /**
   * The master's penalty (the services it serves itself, ManageSieve):
   * workers' changes are applied to it, its own go out to every worker.
   */
  sharePenalty(penalty: AuthPenalty): void {
    this.masterPenalty = penalty;
    penalty.onChange = (op, ip, now) => {
      for (const o of this.workers) if (o?.ready) o.child.send({ t: 'penalty', op, ip, now } satisfies WorkerMessage);
    };
  }
  private masterPenalty: AuthPenalty | null = null;

  /** Fork the workers and wait until each has loaded the configuration (from `files`, see privileged-files.ts). */
  async start(files: ConfigFilesSnapshot): Promise<void> {
    this.files = files;
    await Promise.all(Array.from({ length: this.count }, (_, i) => this.spawn(i)));
    this.started = true;
  }

  private spawn(slot: number): Promise<void> {
    // the log files the master opened as root, at fds 4… (logger.ts): an unprivileged worker could not open them
    const logs = logFdsForChild(4);
    const child = fork(this.script, ['--imap-worker', ...this.args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...logs.stdio], env: { ...process.env, ...logs.env }, serialization: 'json' });
    const w: Worker = { child, sessions: 0, ready: false };
    this.workers[slot] = w;
    // a send to a worker whose channel just closed (it died, 'exit' not seen yet) is an 'error' event: unlistened, it would end the master
    child.on('error', (e) => this.log.error(`imap worker ${child.pid}: ${e.message}`));
    child.send({ t: 'init', files: this.files } satisfies WorkerMessage);
    return new Promise<void>((resolve, reject) => {
      child.on('message', (m: WorkerMessage) => {
        if (m.t === 'ready') {
          w.ready = true;
          if (this.started) this.log.info(`imap: ${this.pids.length} worker processes (${this.pids.join(' ')})`);
          resolve();
        }
        else if (m.t === 'load') w.sessions = m.sessions;
        else if (m.t === 'admit') w.child.send({ t: 'admitted', id: m.id, verdict: this.table.admit(m.id, m.user) } satisfies WorkerMessage);
        else if (m.t === 'closed') this.table.close(m.id);
        else if (m.t === 'penalty') {
          this.masterPenalty?.apply(m.op, m.ip, m.now);
          for (const o of this.workers) if (o && o !== w && o.ready) o.child.send(m);
        }
      });
      child.on('exit', (code, sig) => {
        w.ready = false;
        this.table.closeOwner(w); // its connections died with it
        if (this.started && !this.stopping && this.workers[slot] === w) {
          this.log.error(`imap worker ${child.pid} died (${sig ?? `exit ${code}`}), starting a new one`);
          setTimeout(() => void this.spawn(slot).catch((e) => this.log.error((e as Error).message)), 200);
        }
        reject(new Error(`imap worker ${child.pid} exited during start-up (${sig ?? `exit ${code}`})`));
      });
    });
  }

  /** Hand an accepted, unread connection to the least-loaded ready worker. */
  dispatch(socket: Socket, spec: ListenerSpec): void {
    let best: Worker | undefined;
    for (const w of this.workers) if (w?.ready && w.child.connected && (!best || w.sessions < best.sessions)) best = w;
    if (!best) { socket.destroy(); return; }
    best.sessions++; // until the worker reports its own count
    const to = best;
    const ip = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');
    const id = this.table.open({ rip: ip(socket.remoteAddress), lip: ip(socket.localAddress) }, () => {
      if (to.child.connected) to.child.send({ t: 'evict', id } satisfies WorkerMessage);
    }, to);
    best.child.send({ t: 'conn', spec, id } satisfies WorkerMessage, socket, { keepOpen: false }, (e) => {
      if (e) { this.log.error(`handing a connection to imap worker ${best.child.pid}: ${e.message}`); socket.destroy(); this.table.close(id); }
    });
  }

  get pids(): number[] { return this.workers.filter(Boolean).map((w) => w.child.pid!).filter(Boolean); }

  /** Ask every worker to say BYE to its sessions and exit; kill what lingers. */
  async close(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers.filter(Boolean).map((w) => new Promise<void>((r) => {
      if (w.child.exitCode !== null || w.child.signalCode !== null) { r(); return; }
      const t = setTimeout(() => w.child.kill('SIGKILL'), 5000);
      w.child.once('exit', () => { clearTimeout(t); r(); });
      if (w.child.connected) w.child.send({ t: 'shutdown' } satisfies WorkerMessage); else w.child.kill('SIGTERM');
    })));
  }
}
