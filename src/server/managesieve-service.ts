/**
 * Serving ManageSieve (RFC 5804) on the listeners of
 * `service managesieve-login { inet_listener sieve { port = 4190 } }` when
 * `protocols` contains `sieve`, as Pigeonhole's managesieve-login does;
 * STARTTLS when a certificate is configured. One ManageSieveSession per
 * connection; authentication through the shared AuthEngine (protocol "sieve",
 * so `protocol sieve { }` filters and %s apply) and the server's per-IP
 * auth penalty, the one IMAP uses (Dovecot has one anvil for all logins).
 * ManageSieve runs in its own supervised processes (service-pool.ts); its
 * connection counts are the master's ConnectionTable for sieve: the
 * managesieve-login cap (oldest unauthenticated connection dropped),
 * `service managesieve`'s cap and mail_max_userip_connections of
 * `protocol sieve`, counted apart from IMAP's as Dovecot does. Served
 * directly (accept(), as tests do), a table of its own counts them.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ConnectionSlot } from '../config/connection-limits.js';
import type { DovecotConfig } from '../config/settings.js';
import { AuthEngine } from '../auth/engine.js';
import { AuthPenalty } from '../auth/penalty.js';
import { resolveMailUser } from '../mailstore/user-store.js';
import { ManageSieveSession } from '../managesieve/session.js';
import { parseListen, type ListenerSpec, type TlsMaterial } from './listeners.js';
import { serverStartTls } from './starttls.js';
import { fromListener } from './haproxy.js';
import { ServerTlsContext } from './tls-context.js';
import { protocolLimits } from '../config/connection-limits.js';
import { Logger } from '../log/logger.js';
import { ConnectionTable } from './connection-table.js';

/** Pigeonhole's built-in listener when the config has no managesieve-login service. */
const DEFAULT_PORT = 4190;

export function managesieveListenerSpecs(config: DovecotConfig): ListenerSpec[] {
  if (!config.get('protocols').split(/\s+/).includes('sieve')) return [];
  const listen = parseListen(config.get('listen'));
  const svc = config.services().find((s) => s.name === 'managesieve-login');
  const listeners = svc?.inetListeners.length ? svc.inetListeners : [{ name: 'sieve', port: String(DEFAULT_PORT) }];
  const specs: ListenerSpec[] = [];
  for (const l of listeners) {
    const port = Number(l.port ?? 0);
    if (!port) continue;
    for (const address of l.address ? parseListen(l.address) : listen) specs.push({ service: 'managesieve-login', name: l.name, address, port, ssl: l.ssl === 'yes', haproxy: l.haproxy === 'yes' });
  }
  return specs;
}

export class ManageSieveService {
  private readonly auth: AuthEngine;
  private readonly table: ConnectionTable;

  /** `penalty`: the server's shared one (main.ts passes IMAP's); a private one when alone (tests). */
  /** One TLS context for all of this process's connections (null: no certificate); setTlsMaterial() on it replaces it. */
  readonly tls: ServerTlsContext | null;

  constructor(readonly config: DovecotConfig, tls: TlsMaterial | null, readonly penalty = new AuthPenalty()) {
    this.tls = tls ? new ServerTlsContext(tls) : null;
    this.auth = new AuthEngine(config, 'sieve');
    this.table = new ConnectionTable(protocolLimits(config, 'sieve'), new Logger('master'));
  }

  /** Handed-off connections by the master's id, for its evictions. */
  private readonly byId = new Map<number, ManageSieveSession>();

  /** A raw connection handed over by the master (service-pool.ts), counted in its table. */
  acceptHandedOff(raw: Socket, spec: ListenerSpec, id: number, slot: ConnectionSlot): void {
    const counted: ConnectionSlot = { admit: (user) => slot.admit(user), release: () => { this.byId.delete(id); slot.release(); } };
    fromListener(raw, spec, { config: this.config, log: new Logger('managesieve-login'), tls: () => this.tls?.current() ?? null },
      (stream, addr) => this.byId.set(id, this.accept(stream, spec, addr, counted)), () => counted.release());
  }

  /** The master dropped handed-off connection `id` (its login service is full). */
  evict(id: number): void { this.byId.get(id)?.evict(); }

  /** sealadm kick of handed-off connection `id`. */
  kick(id: number): void { this.byId.get(id)?.kick(); }

  accept(socket: Socket | TLSSocket, spec: ListenerSpec, addr: { rip?: string; lip?: string; proxiedSsl?: boolean; trusted?: boolean } = { rip: socket.remoteAddress, lip: socket.localAddress }, slot?: ConnectionSlot): ManageSieveSession {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    const tls = this.tls;
    const remoteIp = addr.rip?.replace(/^::ffff:/, '');
    const localIp = addr.lip?.replace(/^::ffff:/, '');
    if (!slot) {
      const table = this.table;
      const id = table.open({ rip: remoteIp ?? '', lip: localIp ?? '' }, () => session.evict());
      slot = { admit: async (user) => table.admit(id, user), release: () => table.close(id) };
    }
    const session: ManageSieveSession = new ManageSieveSession(socket, {
      config: this.config,
      auth: this.auth,
      penalty: this.penalty,
      resolveHome: (user, fields) => resolveMailUser(this.config, user, fields, 'sieve').home,
      tlsAvailable: !!tls && !spec.ssl,
      secured: spec.ssl || !!addr.proxiedSsl,
      trusted: !!addr.trusted,
      remoteIp,
      slot,
      localIp,
      startTls: tls ? () => serverStartTls(socket, () => tls.current()) : undefined,
    });
    session.start();
    return session;
  }

  async close(): Promise<void> { await this.auth.close(); }
}
