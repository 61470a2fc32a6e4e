/**
 * Serving IMAP on the listeners of `service imap-login`: one Session per
 * connection, TLS on imaps listeners, STARTTLS on plain ones when a
 * certificate is configured (`ssl = required` refuses plaintext logins
 * outside TLS, as Dovecot's disable_plaintext_auth does), and the shared
 * login service (auth engine, penalties). Every connection takes a slot in
 * the master's ConnectionTable (connection-table.ts): this process's own
 * when it serves IMAP itself, the master's over IPC in an IMAP worker.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import { LoginService } from '../imap/login.js';
import { Session } from '../imap/session.js';
import type { ListenerSpec, TlsMaterial } from './listeners.js';
import { serverStartTls } from './starttls.js';
import { fromListener } from './haproxy.js';
import { ServerTlsContext } from './tls-context.js';
import { protocolLimits, type ConnectionAddresses, type ConnectionSlot } from '../config/connection-limits.js';
import { ConnectionTable } from './connection-table.js';

export class ImapService {
  readonly login: LoginService;
  private readonly sessions = new Set<Session>();
  private readonly log = new Logger('imap-login');
  /** The connection counts when this process serves IMAP itself (an IMAP worker gets slots from the master). */
  private table: ConnectionTable | null = null;
  /** Handed-off connections by the master's id, for its evictions. */
  private readonly byId = new Map<number, Session>();

  /** One TLS context for all of this process's connections (null: no certificate); setTlsMaterial() on it replaces it. */
  readonly tls: ServerTlsContext | null;

  constructor(readonly config: DovecotConfig, tls: TlsMaterial | null) {
    this.tls = tls ? new ServerTlsContext(tls) : null;
    // ssl = required: no plaintext authentication outside TLS (Dovecot 2.3 behaviour)
    this.login = new LoginService(config, this.log);
  }

  get connections(): number { return this.sessions.size; }

  /**
   * A raw TCP connection handed over by the master process (see
   * service-pool.ts): on an imaps listener TLS starts here.
   */
  acceptHandedOff(raw: Socket, spec: ListenerSpec, id: number, slot: ConnectionSlot): void {
    const release = () => { this.byId.delete(id); slot.release(); };
    const counted = { admit: (user: string) => slot.admit(user), release };
    fromListener(raw, spec, { config: this.config, log: this.log, tls: () => this.tls?.current() ?? null },
      (stream, addr) => this.byId.set(id, this.accept(stream, spec, addr, counted)), release);
  }

  /** The master dropped handed-off connection `id` (its login service is full). */
  evict(id: number): void { this.byId.get(id)?.evict(); }

  /** sealadm kick of handed-off connection `id`. */
  kick(id: number): void { this.byId.get(id)?.kick(); }

  accept(socket: Socket | TLSSocket, spec: ListenerSpec, addr: { rip?: string; lip?: string; proxiedSsl?: boolean; trusted?: boolean } = { rip: socket.remoteAddress, lip: socket.localAddress }, slot?: ConnectionSlot): Session {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    const rip = addr.rip?.replace(/^::ffff:/, '') ?? '';
    const lip = addr.lip?.replace(/^::ffff:/, '') ?? '';
    if (!slot) slot = this.localSlot({ rip, lip }, () => session.evict());
    const tls = this.tls;
    const starttls = tls && !spec.ssl ? (raw: Duplex) => serverStartTls(raw, () => tls.current()) : undefined;
    const session = new Session(socket, {
      config: this.config, log: new Logger(`imap(${rip})`), login: this.login, rip, lip,
      secured: spec.ssl || !!addr.proxiedSsl, trusted: !!addr.trusted, starttls, slot,
    });
    this.sessions.add(session);
    socket.once('close', () => this.sessions.delete(session));
    void session.start().catch((e) => { this.log.error(`session: ${(e as Error).message}`); socket.destroy(); });
    return session;
  }

  /** A slot in this process's own table (IMAP served in the master). */
  private localSlot(addr: ConnectionAddresses, evict: () => void): ConnectionSlot {
    this.table ??= new ConnectionTable(protocolLimits(this.config, 'imap'), new Logger('master'));
    const table = this.table;
    const id = table.open(addr, evict);
    return { admit: async (user) => table.admit(id, user), release: () => table.close(id) };
  }

  async close(): Promise<void> {
    for (const s of this.sessions) await s.bye('Server shutting down.').catch(() => undefined);
    await this.login.close();
  }
}
