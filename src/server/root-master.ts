/**
 * The root master of Dovecot's process model (src/master/ in Dovecot), used
 * when Sealmail is started as root and the tree sets no `mail_uid` — the
 * ISPmail shape, where the uid/gid come from the userdb only. The master
 * stays root and touches no mail: it binds the listeners, reads the
 * root-only files (TLS key, dovecot-sql.conf.ext) and hands each child only
 * what it needs, starts and restarts the children, and routes a login:
 *
 *   client ─▶ master (accept, unread) ─▶ imap-login process (default_login_user:
 *   TLS, pre-login, AUTH to the auth process) ─▶ master: userdb lookup in the
 *   auth process (default_internal_user) → uid/gid checked as Dovecot's
 *   mail-storage-service does ─▶ the mail process of that uid:gid (started
 *   on first use), which gets the login process's proxy connection.
 *
 * A dying child is logged as Dovecot's master logs it and replaced (a mail
 * process on the next login of its uid); its sessions end, the others go on.
 *
 * The master sees every connection it routes, so it keeps the counts of
 * config/connection-limits.ts (a ConnectionTable per protocol, as the
 * pools mode does): the login services' client_limit × process_limit (the
 * oldest unauthenticated connection is dropped, in whichever login process
 * it is), service imap / managesieve / pop3 client_limit × process_limit for the
 * logged-in sessions of all mail processes together, and
 * mail_max_userip_connections; the login processes ask before a session
 * starts and say when a connection ends.
 *
 * An LMTP copy too big for the IPC message is streamed from the LMTP process
 * to the mail process over a socket the master routes (lmtp-copy.ts).
 *
 * Reload (SIGHUP, reload()): new auth, LMTP and login processes start with
 * the re-read tree (and root-only files read again); once ready they take
 * every new connection and login, new logins get new mail processes, and
 * the old children, told to `retire` (retire.ts), serve their sessions to
 * the end and exit. The master also keeps the logged-in sessions (reported
 * by the mail processes) for sealadm who/kick (admin()).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, chownSync, mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import { configFilesSnapshot, stopRecording, type ConfigFilesSnapshot } from '../config/privileged-files.js';
import { mailAccessRefusal, resolveMailUser } from '../mailstore/user-store.js';
import { resolveGroup, resolveUser, type Identity } from '../util/passwd.js';
import type { Fields } from '../auth/databases.js';
import { verifyAppPassword } from '../crypt/app-passwords.js';
import { closeListeners, openListeners, openUnixListener, type ListenerSpec, type OpenListener, type OpenUnixListener, type TlsMaterial } from './listeners.js';
import { lmtpInetSpecs, unixListenerSpecs } from './delivery-services.js';
import { guardAccept } from './faults.js';
import { forkChild, sendTo, serviceUser, type ChildMessage, type ConnProto, type DeliveryRequest, type LoginRequest, type Role } from './process-model.js';
import { ConnectionTable } from './connection-table.js';
import { protocolLimits } from '../config/connection-limits.js';
import { serviceProcessCount } from './service-pool.js';
import { readCopyKey } from './lmtp-copy.js';
import { lmtpSpoolDir } from './lmtp-spool-dir.js';
import { UserConcurrency } from '../lmtp/user-concurrency.js';
import { rebindListeners, type WantedListener } from './listener-reload.js';
import type { AdminTarget } from './admin-socket.js';
import { flushAnswered, flushEverywhere } from './auth-cache-flush.js';
import { takeChildError } from '../log/log-error-buffer.js';
import { askPenaltyDump, penaltyDumpAnswered } from './penalty-dump.js';
import { ingestStats } from './stats-metrics.js';

/**
 * What start() and reload() take from a tree before anything changes: the
 * service users and the connection limits, with doveconf's
 * `Error in configuration file F: …` when they do not resolve.
 */
function treeSettings(config: DovecotConfig): { loginUser: Identity; internalUser: Identity; limits: Record<ConnProto, ConnectionTable['limits']> } {
  try {
    return {
      loginUser: serviceUser('default_login_user', config.get('default_login_user') || 'dovenull'),
      internalUser: serviceUser('default_internal_user', config.get('default_internal_user') || 'dovecot'),
      limits: { imap: protocolLimits(config, 'imap'), sieve: protocolLimits(config, 'sieve'), pop3: protocolLimits(config, 'pop3') },
    };
  } catch (e) { throw new Error(`Error in configuration file ${config.path}: ${(e as Error).message}`); }
}

/** True where this mode applies: root, and no mail_uid to drop to. */
export function rootMasterApplies(config: DovecotConfig): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0 && !config.get('mail_uid');
}

export interface RootMasterOptions {
  config: DovecotConfig;
  /** The `sealmail` script and its `-c FILE` for the children. */
  script: string;
  args: string[];
  imapSpecs: ListenerSpec[];
  /** managesieve-login's listeners: served by the same login processes. */
  sieveSpecs: ListenerSpec[];
  /** pop3-login's listeners: served by the same login processes. */
  pop3Specs: ListenerSpec[];
  tls: TlsMaterial | null;
  /** Files only the auth process may see (passdb/userdb args files such as dovecot-sql.conf.ext). */
  authFiles: string[];
}

interface Child { child: ChildProcess; ready: Promise<boolean>; isReady: boolean }

/** How long a login waits for the mail process to take its connection before it counts as failed. */
const HANDOFF_TIMEOUT_MS = 30_000;
/** Connections kept waiting while every login process restarts (Dovecot's listen backlog plays this part). */
const MAX_WAITING_CONNS = 1000;
/** How long a child may take to end its sessions at shutdown before it is killed. */
const SHUTDOWN_GRACE_MS = 5000;

export class RootMaster {
  private readonly log = new Logger('master');
  private stopping = false;
  private open: OpenListener[] = [];
  private readonly sockets: Server[] = [];
  /** The auth sockets other programs use (Postfix's private/auth, auth-userdb). */
  private readonly unix: OpenUnixListener[] = [];
  private dir = '';
  private loginUser!: Identity;
  private internalUser!: Identity;
  private logins: (Child | null)[] = [];
  private nextLogin = 0;
  private auth: Child | null = null;
  /** The LMTP front processes (one per core unless service lmtp's process_min_avail says), taking connections in turn. */
  private lmtps: (Child | null)[] = [];
  private nextLmtp = 0;
  /** lmtp_user_concurrency_limit over every LMTP process (user-concurrency.ts). */
  private readonly userSlots = new UserConcurrency();
  /** LMTP copies being stored and quota checks made by a mail process, by the master's id: whom to answer. */
  private readonly jobs = new Map<number, { from: ChildProcess; id: number; to: Child; kind: MailJob['t'] }>();
  private nextJob = 0;
  /** Where the LMTP processes spool, when not mail_temp_dir (lmtp-spool-dir.ts). */
  private lmtpSpool: string | undefined;
  /** Streamed LMTP copies whose socket the LMTP process is to open, by the key it will send (lmtp-copy.ts). */
  private readonly copies = new Map<string, { req: DeliveryRequest; job: number; timer: NodeJS.Timeout }>();
  /** The socket the LMTP process opens for each streamed copy. */
  private copySocket = '';
  private readonly mail = new Map<string, Child>();
  private readonly userdbWaits = new Map<number, { to: Child; done: (m: Extract<ChildMessage, { t: 'userdb-reply' }>) => void }>();
  /** After a reload: children of the old tree, serving their sessions to the end (and the auth process each old login process uses). */
  private readonly retired = new Set<Child>();
  private readonly retiredAuth = new Map<ChildProcess, Child>();
  private sockPaths = { loginSocket: '', authSocket: '' };
  /** Logged-in sessions, by the id given to the mail process (sealadm who/kick). */
  private readonly live = new Map<number, { user: string; service: string; ip: string; to: Child }>();
  private nextSid = 0;
  private nextUserdb = 0;
  /** Logins routed to a mail process, by the key the login process sends on the login socket. */
  private readonly handoffs = new Map<string, { req: LoginRequest; fields: Fields; to: Child; timer: NodeJS.Timeout }>();
  private files!: ConfigFilesSnapshot;
  /** Client connections that came while no login process was ready (a restart): served when one is. */
  private readonly waitingConns: { socket: Socket; spec: ListenerSpec }[] = [];
  /** The connection counts of each protocol (see header). */
  private tables!: Record<ConnProto, ConnectionTable>;

  constructor(private o: RootMasterOptions) {}

  /** Resolve the service users (Dovecot's texts), bind, start the children. Throws a start-up error's text. */
  async start(): Promise<string[]> {
    const { config } = this.o;
    const t = treeSettings(config);
    this.loginUser = t.loginUser;
    this.internalUser = t.internalUser;
    this.tables = { imap: new ConnectionTable(t.limits.imap, this.log), sieve: new ConnectionTable(t.limits.sieve, this.log), pop3: new ConnectionTable(t.limits.pop3, this.log) };
    this.files = configFilesSnapshot();
    stopRecording();
    // the sockets between the children, under base_dir as Dovecot's login/ directory: root binds them, only the login user may connect
    this.dir = join(config.get('base_dir') || '/run/dovecot', 'sealmail-login');
    rmSync(this.dir, { recursive: true, force: true }); // a previous run's, killed before it could clean up
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    chmodSync(this.dir, 0o755);
    const loginSocket = join(this.dir, 'login-imap');
    const authSocket = join(this.dir, 'auth-login');
    // a connection that comes while the auth process restarts waits for the new one to be ready
    await this.bindUnix(authSocket, (s) => this.toAuth(s, 'login'));
    // Postfix's SASL socket and auth-userdb, with the owner and mode the tree gives (delivery-services.ts)
    for (const spec of unixListenerSpecs(config, 'auth')) {
      const kind = spec.service === 'auth-userdb' ? 'auth-userdb' : 'auth';
      try { this.unix.push(await openUnixListener(spec, (s) => this.toAuth(s, kind), { handOff: true })); } catch (e) { this.log.warn(`${(e as Error).message} (not served)`); }
    }
    await this.bindUnix(loginSocket, (s) => this.onLoginSocket(s));

    this.auth = this.spawnAuth();
    const lmtp = config.get('protocols').split(/\s+/).includes('lmtp');
    // the LMTP process serves LMTP and quota-status (Postfix's policy check)
    const lmtpSpecs = [...(lmtp ? unixListenerSpecs(config, 'lmtp') : []), ...unixListenerSpecs(config, 'quota-status')];
    if (lmtp || lmtpSpecs.length) {
      this.copySocket = join(this.dir, 'lmtp-copy');
      await this.bindUnix(this.copySocket, (s) => readCopyKey(s, (key) => this.onCopySocket(key, s)), this.internalUser);
      this.lmtpSpool = lmtpSpoolDir(config, this.internalUser, (text) => this.log.warn(text));
      this.lmtps = Array.from({ length: this.lmtpProcessCount() }, (_, i) => this.spawnLmtp(i));
    }
    for (const spec of lmtpSpecs) {
      const kind = spec.service === 'quota-status' ? 'quota-status' : 'lmtp';
      try { this.unix.push(await openUnixListener(spec, (s) => this.toLmtp(s, kind), { handOff: true })); } catch (e) { this.log.warn(`${(e as Error).message} (not served)`); }
    }
    const count = this.loginProcessCount();
    this.sockPaths = { loginSocket, authSocket };
    for (let i = 0; i < count; i++) this.logins.push(this.spawnLogin(i, { loginSocket, authSocket }));
    await Promise.all([this.auth.ready, ...this.logins.map((l) => l!.ready)]);
    this.open = [];
    for (const w of this.wantedListeners()) this.open.push(...await openListeners([w.spec], this.o.tls, w.onConnection, { handOff: true }));
    return [
      ...this.unix.map((l) => `listening on ${l.spec.path} (${l.spec.service})`),
      ...this.open.map((l) => `listening on ${l.spec.address}:${l.port} (${l.spec.service}/${l.spec.name}${l.spec.ssl ? ', ssl' : ''})`),
      `imap-login: ${count} processes as ${this.loginUser.name}, auth as ${this.internalUser.name}, imap as the userdb's uid`,
    ];
  }

  /**
   * The login processes to keep: process_min_avail of imap-login (0: one
   * per core, as the pools mode) or of managesieve-login when it listens,
   * whichever is more, never beyond process_limit (service-pool.ts).
   */
  private loginProcessCount(): number {
    const { config } = this.o;
    let count: number;
    try {
      count = serviceProcessCount(config, 'imap-login');
      if (this.o.sieveSpecs.length) count = Math.max(count, serviceProcessCount(config, 'managesieve-login'));
      if (this.o.pop3Specs.length) count = Math.max(count, serviceProcessCount(config, 'pop3-login'));
    } catch (e) { throw new Error(`Error in configuration file ${config.path}: ${(e as Error).message}`); }
    return count;
  }

  /** A socket between the children, that only `owner` (the login user unless said) may connect to. */
  private async bindUnix(path: string, onConn: (s: Socket) => void, owner: Identity = this.loginUser): Promise<void> {
    const server = createServer({ pauseOnConnect: true }, onConn);
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(path, () => resolve()); });
    chownSync(path, owner.uid, owner.gid);
    chmodSync(path, 0o600);
    this.sockets.push(server);
  }

  /** A child of `role` as `as`, supervised: its exit is logged as Dovecot's master logs it, `restart` replaces it. */
  private spawn(service: string, role: Role, as: { uid: number; gid: number }, files: ConfigFilesSnapshot, extra: Partial<Extract<ChildMessage, { t: 'init' }>>, restart: () => void): Child {
    const child = forkChild(this.o.script, role, this.o.args, as);
    const c: Child = { child, ready: Promise.resolve(false), isReady: false };
    c.ready = new Promise<boolean>((resolve) => {
      child.on('message', (m: ChildMessage) => {
        if (m.t !== 'ready') { this.onChildMessage(child, m); return; }
        c.isReady = true;
        resolve(true);
        if (role === 'login') this.flushWaiting();
      });
      child.once('disconnect', () => { c.isReady = false; });
      child.once('exit', (code, signal) => {
        c.isReady = false;
        resolve(false);
        this.retired.delete(c);
        this.retiredAuth.delete(child);
        if (this.stopping) return;
        if (signal) this.log.error(`service(${service}): child ${child.pid} killed with signal ${signal === 'SIGKILL' ? 9 : signal}`);
        else if (code) this.log.error(`service(${service}): child ${child.pid} returned error ${code}`);
        restart();
      });
    });
    child.on('error', () => undefined);
    sendTo(child, { t: 'init', files, ...extra });
    return c;
  }

  /** What a login or mail process may see: the tree and the TLS key, not the auth process's files. */
  private filesWithout(paths: string[]): ConfigFilesSnapshot {
    const files = { ...this.files.files };
    for (const p of paths) delete files[p];
    return { files, globs: this.files.globs };
  }

  private spawnAuth(): Child {
    const c = this.spawn('auth', 'auth', this.internalUser, this.files, {}, () => {
      for (const [id, w] of this.userdbWaits) if (w.to === c) { w.done({ t: 'userdb-reply', id: 0, result: 'tempfail', fields: [] }); this.userdbWaits.delete(id); }
      if (this.auth === c) this.auth = this.spawnAuth();
    });
    return c;
  }

  /** service lmtp's processes: process_min_avail, 0 meaning one per core (service-pool.ts), within process_limit. */
  private lmtpProcessCount(): number {
    try { return serviceProcessCount(this.o.config, 'lmtp'); } catch (e) { throw new Error(`Error in configuration file ${this.o.config.path}: ${(e as Error).message}`); }
  }

  private spawnLmtp(i: number): Child {
    const c: Child = this.spawn('lmtp', 'lmtp', this.internalUser, this.files, { copySocket: this.copySocket, spoolDir: this.lmtpSpool }, () => {
      this.userSlots.releaseOwner(c.child); // its deliveries ended with it
      if (this.lmtps[i] === c) this.lmtps[i] = this.spawnLmtp(i);
    });
    return c;
  }

  /** An LMTP connection (unread) to the next ready LMTP process in turn, or to the next one once it is ready (a restart). */
  private toLmtp(s: Socket, kind: 'lmtp' | 'quota-status'): void {
    s.on('error', () => s.destroy());
    if (!this.lmtps.length) { s.destroy(); return; }
    let l: Child | null = null;
    for (let n = 0; n < this.lmtps.length && !l?.isReady; n++) l = this.lmtps[this.nextLmtp++ % this.lmtps.length];
    if (!l) { s.destroy(); return; }
    const to = l;
    void to.ready.then((ok) => { if (ok && to.child.connected) sendTo(to.child, { t: 'lmtp-conn', kind }, s); else s.destroy(); });
  }

  /**
   * One LMTP recipient's copy, or a quota-status check: the uid/gid checked
   * as for a login (the delivery answers 451 as Dovecot's lmtp does when the
   * user can't be initialized), done by the mail process of that uid.
   */
  private async routeMailJob(from: ChildProcess, m: MailJob): Promise<void> {
    const { req } = m;
    const user = resolveMailUser(this.o.config, req.user, req.fields, 'lmtp');
    const ids = mailIds(user.uid, user.gid);
    const refused = typeof ids === 'string' ? ids : mailAccessRefusal(this.o.config, user, 'lmtp');
    if (refused || typeof ids === 'string') {
      // lmtp_rcpt_check_quota's refusal is logged by the LMTP process, with the recipient (lmtp-local.c)
      if (m.t === 'quota' && m.req.rcpt) { failJob(from, m.t, req.id, refused ?? undefined); return; }
      Logger.forUser(m.t === 'deliver' ? 'lmtp' : 'quota-status', req.user).error(`Failed to initialize user: ${refused}`);
      failJob(from, m.t, req.id);
      return;
    }
    const to = m.t === 'deliver' ? this.deliveryProcess(ids.uid, ids.gid) : this.mailProcess(ids.uid, ids.gid);
    if (!await to.ready) { failJob(from, m.t, req.id); return; }
    const id = ++this.nextJob;
    this.jobs.set(id, { from, id: req.id, to, kind: m.t });
    if (m.t === 'deliver' && m.req.streamed) this.awaitCopySocket({ ...m.req, id });
    else sendTo(to.child, m.t === 'deliver' ? { t: 'deliver', req: { ...m.req, id } } : { t: 'quota', req: { ...m.req, id } });
  }

  /**
   * A streamed copy (lmtp-copy.ts): the LMTP process is told to open the
   * copy socket with a fresh key; that socket then goes, unread past the key,
   * to the mail process with the copy's request. The master never holds the
   * message. A socket that does not come in time fails the copy (451).
   */
  private awaitCopySocket(req: DeliveryRequest): void {
    const job = this.jobs.get(req.id)!;
    const key = randomBytes(16).toString('hex');
    const timer = setTimeout(() => {
      this.copies.delete(key);
      if (this.jobs.get(req.id) !== job) return;
      this.jobs.delete(req.id);
      failJob(job.from, 'deliver', job.id);
    }, HANDOFF_TIMEOUT_MS).unref();
    this.copies.set(key, { req, job: req.id, timer });
    sendTo(job.from, { t: 'copy-go', id: job.id, key });
  }

  private onCopySocket(key: string, s: Socket): void {
    const c = this.copies.get(key);
    if (!c) { s.destroy(); return; }
    this.copies.delete(key);
    clearTimeout(c.timer);
    // the mail process may have died meanwhile: its jobs were answered 451 already
    const job = this.jobs.get(c.job);
    if (!job) { s.destroy(); return; }
    sendTo(job.to.child, { t: 'deliver', req: c.req }, s);
  }

  private spawnLogin(i: number, sockets: { loginSocket: string; authSocket: string }): Child {
    const c: Child = this.spawn('imap-login', 'login', this.loginUser, this.filesWithout(this.o.authFiles), sockets, () => {
      // its connections, pre-login and proxied, ended with it (a retired one's too)
      for (const table of Object.values(this.tables)) table.closeOwner(c.child);
      if (this.logins[i] === c) this.logins[i] = this.spawnLogin(i, sockets);
    });
    return c;
  }

  /**
   * The mail process for a delivery to uid:gid: the one with the fewest
   * copies in flight among the uid's mail processes (its IMAP one and up to
   * service lmtp's process count less one more, started when every one is
   * busy), so that deliveries to one uid (ISPmail: every user is vmail) use
   * every core, as Dovecot's lmtp processes do. What one delivery does
   * stays in one process; all of them read the same files.
   */
  private deliveryProcess(uid: number, gid: number): Child {
    const max = Math.max(1, this.lmtps.length);
    const inFlight = new Map<Child, number>();
    for (const j of this.jobs.values()) inFlight.set(j.to, (inFlight.get(j.to) ?? 0) + 1);
    let best: Child | null = null;
    let bestN = Infinity;
    let free = -1;
    for (let k = 0; k < max; k++) {
      const c = this.mail.get(mailKey(uid, gid, k));
      if (!c) { if (free < 0) free = k; continue; }
      const n = inFlight.get(c) ?? 0;
      if (n < bestN) { best = c; bestN = n; }
    }
    if (best && (bestN === 0 || free < 0)) return best;
    return this.mailProcess(uid, gid, free < 0 ? 0 : free);
  }

  /** Mail process `k` of one uid:gid (k 0: its IMAP sessions' and quota checks'), started on first use. */
  private mailProcess(uid: number, gid: number, k = 0): Child {
    const key = mailKey(uid, gid, k);
    let c = this.mail.get(key);
    if (!c) {
      c = this.spawn('imap', 'mail', { uid, gid }, this.filesWithout(this.o.authFiles), {}, () => {
        if (this.mail.get(key) === c) this.mail.delete(key);
        for (const [sid, l] of this.live) if (l.to === c) this.live.delete(sid);
        // its copies in flight are not stored (451, the sender retries); its quota checks are deferred
        for (const [id, j] of this.jobs) {
          if (j.to !== c) continue;
          this.jobs.delete(id);
          failJob(j.from, j.kind, j.id);
        }
      });
      this.mail.set(key, c);
    }
    return c;
  }

  /**
   * A client connection, unread, to the next ready login process (round
   * robin); while none is (all restarting) it waits, up to
   * MAX_WAITING_CONNS, rather than being closed without a greeting.
   */
  private dispatch(socket: Socket, spec: ListenerSpec): void {
    for (let n = 0; n < this.logins.length; n++) {
      const l = this.logins[this.nextLogin++ % this.logins.length];
      if (!l?.isReady || !l.child.connected) continue;
      const { proto, id } = this.countConnection(socket, spec, l.child);
      // a process that died a moment ago fails the send: the connection then waits for its replacement
      l.child.send({ t: 'conn', spec, id } satisfies ChildMessage, socket, { keepOpen: false }, (e) => {
        if (!e) return;
        this.tables[proto].close(id);
        if (!socket.destroyed) this.dispatch(socket, spec);
      });
      return;
    }
    if (this.waitingConns.length >= MAX_WAITING_CONNS) { socket.destroy(); return; }
    socket.on('error', () => socket.destroy());
    this.waitingConns.push({ socket, spec });
  }

  /**
   * A new connection in its protocol's count, held by login process `to`:
   * should the login service be full, the oldest unauthenticated one, in
   * whichever login process, is told to go (client_destroy_oldest).
   */
  private countConnection(socket: Socket, spec: ListenerSpec, to: ChildProcess): { proto: ConnProto; id: number } {
    const proto: ConnProto = spec.service === 'managesieve-login' ? 'sieve' : spec.service === 'pop3-login' ? 'pop3' : 'imap';
    const addr = { rip: (socket.remoteAddress ?? '').replace(/^::ffff:/, ''), lip: (socket.localAddress ?? '').replace(/^::ffff:/, '') };
    const id = this.tables[proto].open(addr, () => sendTo(to, { t: 'evict', proto, id }), to);
    return { proto, id };
  }

  /** A login process's question on a connection's count (admit), or its end. */
  private onConnCount(from: ChildProcess, m: Extract<ChildMessage, { t: 'admit' | 'conn-closed' }>): void {
    const table = this.tables[m.proto];
    if (m.t === 'conn-closed') { table.close(m.id); return; }
    sendTo(from, { t: 'admitted', proto: m.proto, id: m.id, verdict: table.admit(m.id, m.user) });
  }

  private flushWaiting(): void {
    for (const w of this.waitingConns.splice(0)) if (!w.socket.destroyed) this.dispatch(w.socket, w.spec);
  }

  private onChildMessage(child: ChildProcess, m: ChildMessage): void {
    if (m.t === 'stats') ingestStats(m.batch);
    else if (takeChildError(m)) return;
    else if (m.t === 'auth-cache-flushed') flushAnswered(m.id, m.keys);
    else if (m.t === 'penalty-dumped') penaltyDumpAnswered(m.id, m.rows);
    else if (m.t === 'login') void this.routeLogin(child, m.req).catch((e) => {
      this.log.error(`login of ${m.req.user}: ${(e as Error).message}`);
      sendTo(child, { t: 'login-failed', id: m.req.id, reason: 'internal' });
    });
    else if (m.t === 'admit' || m.t === 'conn-closed') this.onConnCount(child, m);
    else if (m.t === 'deliver' || m.t === 'quota') void this.routeMailJob(child, m);
    else if (m.t === 'user-slot') sendTo(child, { t: 'user-slot-reply', id: m.id, ok: this.userSlots.take(m.user, m.limit, child) });
    else if (m.t === 'user-slot-free') this.userSlots.release(m.user, child);
    else if (m.t === 'delivered' || m.t === 'quota-reply') {
      const j = this.jobs.get(m.id);
      this.jobs.delete(m.id);
      if (j) sendTo(j.from, { ...m, id: j.id });
    } else if (m.t === 'userdb-reply') { this.userdbWaits.get(m.id)?.done(m); this.userdbWaits.delete(m.id); }
    else if (m.t === 'session-end') this.live.delete(m.sid);
    else if (m.t === 'app-password' && (this.auth?.child === child || [...this.retiredAuth.values()].some((a) => a.child === child))) {
      // read as root, never written here (the file stays its owner's): the session notes the use
      void verifyAppPassword(m.home, m.password, false).then((hit) => sendTo(child, { t: 'app-password-reply', id: m.id, hit }));
    }
  }

  /** A connection to one of the auth sockets, to the auth process (waiting for it while it restarts). */
  private toAuth(s: Socket, kind: 'login' | 'auth' | 'auth-userdb'): void {
    s.on('error', () => s.destroy());
    void this.authReady().then((a) => { if (a) sendTo(a.child, { t: 'auth-conn', kind }, s); else s.destroy(); });
  }

  /** The auth process once it is ready; null when it died before (its replacement is for the next request). */
  private async authReady(): Promise<Child | null> {
    const a = this.auth;
    return a && await a.ready && a.child.connected ? a : null;
  }

  private async userdb(req: LoginRequest, from: ChildProcess): Promise<Extract<ChildMessage, { t: 'userdb-reply' }>> {
    const id = ++this.nextUserdb;
    // a login process of the old tree authenticated with the old auth process: its lookup (and prefetched fields) are there
    const old = this.retiredAuth.get(from);
    const a = old && old.isReady && old.child.connected ? old : await this.authReady();
    if (!a) return { t: 'userdb-reply', id, result: 'tempfail', fields: [] };
    return new Promise((resolve) => {
      this.userdbWaits.set(id, { to: a, done: resolve });
      sendTo(a.child, { t: 'userdb', id, authRef: req.authRef, user: req.user, service: req.protocol, rip: req.rip, lip: req.lip });
    });
  }

  /**
   * After the auth process's OK: the userdb decides the uid/gid (mail_uid and
   * mail_gid as fallbacks), checked as Dovecot's mail-storage-service checks
   * them, and the session goes to that uid's mail process.
   */
  private async routeLogin(from: ChildProcess, req: LoginRequest): Promise<void> {
    const fail = (reason: 'init' | 'internal') => sendTo(from, { t: 'login-failed', id: req.id, reason });
    const u = await this.userdb(req, from);
    const ulog = Logger.forUser(req.protocol === 'sieve' ? 'managesieve' : req.protocol, req.user);
    if (u.result !== 'ok') {
      ulog.error(u.result === 'tempfail' ? 'user lookup failed (temporary failure)' : 'User doesn\'t exist');
      fail('internal');
      return;
    }
    const { config } = this.o;
    const user = resolveMailUser(config, req.user, u.fields, req.protocol);
    const ids = mailIds(user.uid, user.gid);
    const refused = typeof ids === 'string' ? ids : mailAccessRefusal(config, user, req.protocol);
    if (refused || typeof ids === 'string') { ulog.error(refused!); fail('init'); return; }
    const to = this.mailProcess(ids.uid, ids.gid);
    if (!await to.ready) { fail('internal'); return; }
    const key = randomBytes(16).toString('hex');
    const timer = setTimeout(() => this.handoffs.delete(key), HANDOFF_TIMEOUT_MS);
    this.handoffs.set(key, { req, fields: u.fields, to, timer });
    sendTo(from, { t: 'login-go', id: req.id, key, mpid: to.child.pid ?? 0 });
  }

  /** The login process's proxy connection: its first line is the key of its login; then it goes to the mail process. */
  private onLoginSocket(s: Socket): void {
    let buf = '';
    s.on('error', () => s.destroy());
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) { if (buf.length > 64) s.destroy(); return; }
      s.off('data', onData);
      s.pause();
      const h = this.handoffs.get(buf.slice(0, nl));
      if (!h) { s.destroy(); return; }
      this.handoffs.delete(buf.slice(0, nl));
      clearTimeout(h.timer);
      const sid = ++this.nextSid;
      this.live.set(sid, { user: h.req.user, service: h.req.protocol, ip: h.req.rip, to: h.to });
      sendTo(h.to.child, { t: 'session', req: h.req, fields: h.fields, sid }, s);
    };
    s.on('data', onData);
    s.resume();
  }

  get pids(): { role: string; pid: number }[] {
    const out: { role: string; pid: number }[] = [];
    for (const l of this.logins) if (l?.child.pid) out.push({ role: 'imap-login', pid: l.child.pid });
    if (this.auth?.child.pid) out.push({ role: 'auth', pid: this.auth.child.pid });
    for (const l of this.lmtps) if (l?.child.pid) out.push({ role: 'lmtp', pid: l.child.pid });
    for (const [k, c] of this.mail) if (c.child.pid) out.push({ role: `imap ${k}`, pid: c.child.pid });
    for (const c of this.retired) if (c.child.pid) out.push({ role: 'retired', pid: c.child.pid });
    return out;
  }

  /** The TCP listeners of the tree: IMAP and ManageSieve to the login processes, LMTP to the LMTP process. */
  private wantedListeners(): WantedListener[] {
    const { config } = this.o;
    const lmtp = config.get('protocols').split(/\s+/).includes('lmtp') ? lmtpInetSpecs(config) : [];
    return [
      ...[...this.o.imapSpecs, ...this.o.sieveSpecs, ...this.o.pop3Specs].map((spec) => ({ spec, onConnection: guardAccept(this.log, (s: Socket, sp: ListenerSpec) => this.dispatch(s, sp)) })),
      ...lmtp.map((spec) => ({ spec, onConnection: guardAccept(this.log, (s: Socket) => this.toLmtp(s, 'lmtp')) })),
    ];
  }

  /**
   * SIGHUP: the re-read tree for everything new. New auth, LMTP and login
   * processes are started with it; when all are ready they replace the old
   * ones, which are told to retire, as are the mail processes (new logins
   * get new ones). Changed TCP listeners are rebound. Throws, changing
   * nothing, when the service users do not resolve or a new process fails
   * to start. The unix listeners (auth, LMTP sockets) stay as they are.
   */
  async reload(o: RootMasterOptions, files: ConfigFilesSnapshot): Promise<void> {
    const { loginUser, internalUser, limits } = treeSettings(o.config);
    const before = { o: this.o, files: this.files, loginUser: this.loginUser, internalUser: this.internalUser, lmtpSpool: this.lmtpSpool };
    Object.assign(this, { o, files, loginUser, internalUser });
    let count: number;
    try { count = this.loginProcessCount(); } catch (e) { Object.assign(this, before); throw e; }
    const fresh: Child[] = [];
    const auth = this.spawnAuth();
    fresh.push(auth);
    let lmtps: Child[] = [];
    if (this.lmtps.length) this.lmtpSpool = lmtpSpoolDir(o.config, internalUser, (text) => this.log.warn(text));
    try { lmtps = this.lmtps.length ? Array.from({ length: this.lmtpProcessCount() }, (_, i) => this.spawnLmtp(i)) : []; } catch (e) {
      Object.assign(this, before);
      auth.child.kill('SIGKILL');
      throw e;
    }
    fresh.push(...lmtps);
    const logins = Array.from({ length: count }, (_, i) => this.spawnLogin(i, this.sockPaths));
    fresh.push(...logins);
    const ok = (await Promise.all(fresh.map((c) => c.ready))).every(Boolean);
    if (!ok || this.stopping) {
      Object.assign(this, before);
      for (const c of fresh) c.child.kill('SIGKILL');
      throw new Error('a process of the new configuration failed to start (see the log above)');
    }
    const oldAuth = this.auth;
    const old = [oldAuth, ...this.lmtps, ...this.logins, ...this.mail.values()].filter((c): c is Child => !!c);
    for (const l of this.logins) if (l && oldAuth) this.retiredAuth.set(l.child, oldAuth);
    this.auth = auth;
    this.lmtps = lmtps;
    this.logins = logins;
    this.mail.clear();
    for (const c of old) { this.retired.add(c); sendTo(c.child, { t: 'retire' }); }
    // the counts so far stay (retired login processes still report their connections' ends); the limits are the new tree's
    for (const p of ['imap', 'sieve', 'pop3'] as const) this.tables[p].limits = limits[p];
    this.open = await rebindListeners(this.open, this.wantedListeners(), this.o.tls, this.log);
  }

  /** sealadm who / kick: the sessions the mail processes serve. */
  admin(): AdminTarget {
    return {
      sessions: () => [...this.live].map(([sid, l]) => ({ key: String(sid), user: l.user, service: l.service, pid: l.to.child.pid ?? 0, ip: l.ip })),
      kick: (keys) => {
        let n = 0;
        for (const k of keys) {
          const l = this.live.get(Number(k));
          if (!l || !l.to.child.connected) continue;
          sendTo(l.to.child, { t: 'kick', sid: Number(k) });
          n++;
        }
        return n;
      },
      // the processes that authenticate: the auth process (and those a reload retired) and the LMTP processes
      flushAuthCache: (users) => flushEverywhere([this.auth, ...this.lmtps, ...this.retiredAuth.values()].filter((c): c is Child => !!c).map((c) => c.child), users),
      // the auth process is Dovecot's anvil for the penalty
      penalties: () => (this.auth ? askPenaltyDump(this.auth.child) : Promise.resolve([])),
    };
  }

  /** Stop: listeners and children together (a listener closes only once the child serving its connections ends them). */
  async close(): Promise<void> {
    this.stopping = true;
    for (const s of [...this.sockets, ...this.unix.map((u) => u.server)]) s.close();
    const children = [...this.logins.map((l) => l?.child), this.auth?.child, ...this.lmtps.map((l) => l?.child), ...[...this.mail.values(), ...this.retired].map((c) => c.child)].filter((c): c is ChildProcess => !!c);
    await Promise.all([closeListeners(this.open), ...children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) { resolve(); return; }
      c.once('exit', () => resolve());
      sendTo(c, { t: 'shutdown' });
      setTimeout(() => { c.kill('SIGKILL'); }, SHUTDOWN_GRACE_MS).unref();
    }))]);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

type MailJob = Extract<ChildMessage, { t: 'deliver' | 'quota' }>;

/** The key of mail process `k` of uid:gid (0: the one IMAP logins go to). */
const mailKey = (uid: number, gid: number, k: number) => (k ? `${uid}:${gid}#${k}` : `${uid}:${gid}`);

/** A job its mail process could not do: 451 for a copy, an unreadable usage for a quota check (`reason`: why, for the log). */
function failJob(to: ChildProcess, kind: MailJob['t'], id: number, reason?: string): void {
  if (kind === 'deliver') sendTo(to, { t: 'delivered', id, result: { ok: false, temp: true, code: '451 4.3.0', text: 'Temporary internal error' } });
  else sendTo(to, { t: 'quota-reply', id, result: reason ? { error: true, reason } : { error: true } });
}

/**
 * The userdb's uid/gid (names or numbers) as numbers, or Dovecot's text for
 * what is missing (mail-storage-service.c: the uid and gid must both be known).
 */
function mailIds(uidSpec: string | undefined, gidSpec: string | undefined): { uid: number; gid: number } | string {
  const uid = !uidSpec ? undefined : /^\d+$/.test(uidSpec) ? Number(uidSpec) : resolveUser(uidSpec)?.uid;
  if (uidSpec && uid === undefined) return `Unknown UNIX UID user: ${uidSpec}`;
  if (uid === 0) return 'userdb returned 0 as uid'; // never a mail process as root, whatever first_valid_uid says
  const gid = !gidSpec ? undefined : /^\d+$/.test(gidSpec) ? Number(gidSpec) : resolveGroup(gidSpec) ?? undefined;
  if (gidSpec && gid === undefined) return `Unknown UNIX GID group: ${gidSpec}`;
  if (uid === undefined) return 'User is missing UID (see mail_uid setting)';
  if (gid === undefined) return 'User is missing GID (see mail_gid setting)';
  return { uid, gid };
}
