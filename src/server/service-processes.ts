/**
 * The master's side of Dovecot's process model: it binds every listener
 * (as root, before privileges are dropped), keeps one supervised pool per
 * service (service-pool.ts) and hands each accepted connection, unread, to
 * the pool of the listener's service. The master parses nothing a client
 * sends, so a client cannot crash it; a crash in a service process takes
 * only that process's connections with it, and its pool replaces it.
 *
 * Pools: imap (listeners of `service imap-login`; one process is both
 * login and mail process), managesieve (`managesieve-login`), pop3
 * (`pop3-login`), lmtp,
 * auth (the Postfix client socket and auth-userdb) and quota-status. The
 * delivery services get one pool each rather than one shared process, so
 * that, as in Dovecot, an LMTP crash never closes Postfix's SMTP AUTH
 * socket or the quota policy service; each costs one Node process.
 * IMAP, ManageSieve and POP3 keep their connection counts in the master (one
 * ConnectionTable per protocol), and LMTP, one process per core, its
 * lmtp_user_concurrency_limit count (UserConcurrency); the auth penalty is
 * relayed between all pools (PenaltyRelay).
 *
 * Reload (SIGHUP): reload() starts each pool's new processes with the
 * re-read tree and rebinds only the listeners that changed
 * (listener-reload.ts); sessions() and kick() answer sealadm who/kick
 * through the admin socket (admin-socket.ts).
 */
import type { Socket } from 'node:net';
import type { DovecotConfig } from '../config/settings.js';
import type { ConfigFilesSnapshot } from '../config/privileged-files.js';
import { protocolLimits } from '../config/connection-limits.js';
import type { Logger } from '../log/logger.js';
import { ConnectionTable } from './connection-table.js';
import { deliveryService, deliveryUnixSpecs, lmtpInetSpecs } from './delivery-services.js';
import { guardAccept } from './faults.js';
import { closeListeners, openListeners, openUnixListener, type ListenerSpec, type OpenListener, type OpenUnixListener, type TlsMaterial } from './listeners.js';
import { managesieveListenerSpecs } from './managesieve-service.js';
import { pop3ListenerSpecs } from './pop3-service.js';
import { PenaltyRelay, ServicePool, serviceProcessCount } from './service-pool.js';
import { rebindListeners, type WantedListener } from './listener-reload.js';
import type { AdminSession, AdminTarget } from './admin-socket.js';
import { flushEverywhere } from './auth-cache-flush.js';
import { replayPenalties } from './penalty-dump.js';
import { UserConcurrency } from '../lmtp/user-concurrency.js';

import { SERVICE_NAMES, type ServiceName } from './service-names.js';
export { SERVICE_NAMES, type ServiceName };

/** The `service {}` section whose process settings a pool follows. */
const SETTINGS_SECTION: Record<ServiceName, string> = { imap: 'imap-login', managesieve: 'managesieve-login', pop3: 'pop3-login', lmtp: 'lmtp', auth: 'auth', 'quota-status': 'quota-status' };

/** The protocols whose connections the master counts (Dovecot's anvil names), by pool. */
const COUNTED: Partial<Record<ServiceName, 'imap' | 'sieve' | 'pop3'>> = { imap: 'imap', managesieve: 'sieve', pop3: 'pop3' };

export class ServiceProcesses {
  readonly inet: OpenListener[] = [];
  readonly unix: OpenUnixListener[] = [];
  private readonly byName = new Map<ServiceName, ServicePool>();
  private readonly penalties = new PenaltyRelay();
  private readonly tables = new Map<ServiceName, ConnectionTable>();
  /** lmtp_user_concurrency_limit, counted here over every LMTP process (user-concurrency.ts). */
  private readonly userSlots = new UserConcurrency();

  constructor(private config: DovecotConfig, private readonly script: string, private readonly args: string[], private readonly log: Logger) {}

  get pools(): ServicePool[] { return [...this.byName.values()]; }

  private pool(name: ServiceName): ServicePool {
    let p = this.byName.get(name);
    if (!p) {
      const proto = COUNTED[name];
      const table = proto ? new ConnectionTable(protocolLimits(this.config, proto), this.log) : null;
      if (table) this.tables.set(name, table);
      const userSlots = name === 'lmtp' ? this.userSlots : undefined;
      p = new ServicePool({ service: name, count: serviceProcessCount(this.config, SETTINGS_SECTION[name]), script: this.script, args: this.args, log: this.log, table, penalties: this.penalties, userSlots });
      this.byName.set(name, p);
    }
    return p;
  }

  private handOff(name: ServiceName) {
    const pool = this.pool(name);
    return guardAccept(this.log, (s: Socket, spec: ListenerSpec) => pool.dispatch(s, spec));
  }

  /**
   * Open every listener (`imapSpecs`: service imap-login's). A unix socket
   * that cannot be created is a warning (not served), as before; an inet
   * listener that cannot be bound is fatal.
   */
  async listen(imapSpecs: ListenerSpec[], tls: TlsMaterial | null): Promise<void> {
    for (const w of this.inetWanted(imapSpecs)) this.inet.push(...await openListeners([w.spec], tls, w.onConnection, { handOff: true }));
    for (const u of deliveryUnixSpecs(this.config)) {
      const name = deliveryService(u.service);
      const spec: ListenerSpec = { service: u.service, name: u.path, address: u.path, port: 0, ssl: false };
      const serve = this.handOff(name);
      try {
        this.unix.push(await openUnixListener(u, (s) => serve(s, spec)));
      } catch (e) {
        this.log.warn(`${(e as Error).message} (not served)`);
      }
    }
  }

  /** The TCP listeners of the tree: TLS happens in the service process, the master only accepts and hands the socket on, unread. */
  private inetWanted(imapSpecs: ListenerSpec[]): WantedListener[] {
    const lmtp = this.config.get('protocols').split(/\s+/).includes('lmtp') ? lmtpInetSpecs(this.config) : [];
    return [
      ...imapSpecs.map((spec) => ({ spec, onConnection: this.handOff('imap') })),
      ...managesieveListenerSpecs(this.config).map((spec) => ({ spec, onConnection: this.handOff('managesieve') })),
      ...pop3ListenerSpecs(this.config).map((spec) => ({ spec, onConnection: this.handOff('pop3') })),
      ...lmtp.map((spec) => ({ spec, onConnection: this.handOff('lmtp') })),
    ];
  }

  /**
   * SIGHUP: the re-read tree (`config`, its files in `files`) for new
   * connections. Changed TCP listeners are rebound; every pool starts its
   * new processes, which take the new connections once ready, and the old
   * ones finish their sessions. Throws when a pool's new processes fail to
   * start (the old ones then go on; the caller logs it). unix_listener
   * changes need a restart.
   */
  async reload(config: DovecotConfig, files: ConfigFilesSnapshot, imapSpecs: ListenerSpec[], tls: TlsMaterial | null): Promise<void> {
    const before = this.config;
    this.config = config;
    const wanted = this.inetWanted(imapSpecs); // creates the pool of a newly enabled service: started below with the others
    try {
      await Promise.all(this.pools.map((p) => p.reload(serviceProcessCount(config, SETTINGS_SECTION[p.service as ServiceName]), files)));
    } catch (e) {
      this.config = before;
      throw e;
    }
    for (const [name, table] of this.tables) table.limits = protocolLimits(config, COUNTED[name]!);
    const kept = await rebindListeners(this.inet, wanted, tls, this.log);
    this.inet.splice(0, this.inet.length, ...kept);
  }

  /** sealadm who / kick, through the admin socket: the logged-in IMAP, ManageSieve and POP3 sessions. */
  admin(): AdminTarget {
    const named = (): { s: AdminSession; pool: ServicePool; owner: unknown; id: number }[] => {
      const out: { s: AdminSession; pool: ServicePool; owner: unknown; id: number }[] = [];
      for (const [name, table] of this.tables) {
        const pool = this.byName.get(name)!;
        const service = COUNTED[name]!; // anvil's service names
        for (const e of table.loggedIn()) out.push({ s: { key: `${name}:${e.id}`, user: e.user, service, pid: pool.pidOf(e.owner), ip: e.rip }, pool, owner: e.owner, id: e.id });
      }
      return out;
    };
    return {
      sessions: () => named().map((n) => n.s),
      kick: (keys) => {
        const want = new Set(keys);
        let n = 0;
        for (const x of named()) if (want.has(x.s.key) && x.pool.kick(x.owner, x.id)) n++;
        return n;
      },
      flushAuthCache: (users) => flushEverywhere(this.pools.flatMap((p) => p.children()), users),
      penalties: async () => replayPenalties(this.penalties.changes),
    };
  }

  /** Fork every pool's processes (after root is given up) and wait until each is ready. */
  async start(files: ConfigFilesSnapshot): Promise<void> {
    await Promise.all(this.pools.map((p) => p.start(files)));
  }

  signal(sig: NodeJS.Signals): void {
    for (const p of this.pools) for (const pid of p.allPids) { try { process.kill(pid, sig); } catch { /* exiting */ } }
  }

  /** Stop accepting, let every process say goodbye to its sessions, and end them. */
  async close(): Promise<void> {
    // together: a handed-off connection keeps its listener open until its process closes it
    await Promise.all([
      closeListeners(this.inet),
      ...this.unix.map((l) => new Promise<void>((r) => l.server.close(() => r()))),
      ...this.pools.map((p) => p.close()),
    ]);
  }
}
