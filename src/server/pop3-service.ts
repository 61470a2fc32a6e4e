/**
 * Serving POP3 on the listeners of `service pop3-login` (Dovecot's
 * defaults: `inet_listener pop3` on 110, `inet_listener pop3s` on 995 with
 * ssl = yes) when `protocols` contains `pop3`; STLS when a certificate is
 * configured. One Pop3Session per connection; authentication through the
 * shared AuthEngine (service "pop3", so `protocol pop3 { }` and %s apply)
 * and the server's per-IP auth penalty, the one IMAP uses (Dovecot's one
 * anvil). Runs in its own supervised processes (service-pool.ts), its
 * connections counted by the master's ConnectionTable for pop3:
 * pop3-login's cap (the oldest unauthenticated connection dropped),
 * `service pop3`'s cap and mail_max_userip_connections of
 * `protocol pop3`. Served directly (accept(), as tests do), a table of
 * its own counts them.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ConnectionSlot } from '../config/connection-limits.js';
import type { DovecotConfig } from '../config/settings.js';
import { AuthEngine } from '../auth/engine.js';
import { AuthPenalty } from '../auth/penalty.js';
import { Pop3Session } from '../pop3/session.js';
import { serviceListenerSpecs, type ListenerSpec, type TlsMaterial } from './listeners.js';
import { serverStartTls } from './starttls.js';
import { fromListener } from './haproxy.js';
import { ServerTlsContext } from './tls-context.js';
import { protocolLimits } from '../config/connection-limits.js';
import { Logger } from '../log/logger.js';
import { ConnectionTable } from './connection-table.js';

/** The listeners of `service pop3-login` when `protocols` has pop3, none otherwise. */
export function pop3ListenerSpecs(config: DovecotConfig): ListenerSpec[] {
  if (!config.get('protocols').split(/\s+/).includes('pop3')) return [];
  return serviceListenerSpecs(config, 'pop3-login');
}

export class Pop3Service {
  private readonly auth: AuthEngine;
  private readonly table: ConnectionTable;
  private readonly sessions = new Set<Pop3Session>();
  /** Handed-off connections by the master's id, for its evictions. */
  private readonly byId = new Map<number, Pop3Session>();
  /** One TLS context for all of this process's connections (null: no certificate). */
  readonly tls: ServerTlsContext | null;

  /** `penalty`: the server's shared one; a private one when alone (tests). */
  constructor(readonly config: DovecotConfig, tls: TlsMaterial | null, readonly penalty = new AuthPenalty()) {
    this.tls = tls ? new ServerTlsContext(tls) : null;
    this.auth = new AuthEngine(config, 'pop3');
    this.table = new ConnectionTable(protocolLimits(config, 'pop3'), new Logger('master'));
  }

  /** A raw connection handed over by the master (service-pool.ts), counted in its table. */
  acceptHandedOff(raw: Socket, spec: ListenerSpec, id: number, slot: ConnectionSlot): void {
    const counted: ConnectionSlot = { admit: (user) => slot.admit(user), release: () => { this.byId.delete(id); slot.release(); } };
    fromListener(raw, spec, { config: this.config, log: new Logger('pop3-login'), tls: () => this.tls?.current() ?? null },
      (stream, addr) => this.byId.set(id, this.accept(stream, spec, addr, counted)), () => counted.release());
  }

  evict(id: number): void { this.byId.get(id)?.evict(); }
  kick(id: number): void { this.byId.get(id)?.kick(); }

  accept(socket: Socket | TLSSocket, spec: ListenerSpec, addr: { rip?: string; lip?: string; proxiedSsl?: boolean; trusted?: boolean } = { rip: socket.remoteAddress, lip: socket.localAddress }, slot?: ConnectionSlot): Pop3Session {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    const tls = this.tls;
    const rip = addr.rip?.replace(/^::ffff:/, '') ?? '';
    const lip = addr.lip?.replace(/^::ffff:/, '') ?? '';
    if (!slot) {
      const table = this.table;
      const id = table.open({ rip, lip }, () => session.evict());
      slot = { admit: async (user) => table.admit(id, user), release: () => table.close(id) };
    }
    const session: Pop3Session = new Pop3Session(socket, {
      config: this.config, auth: this.auth, penalty: this.penalty, rip, lip, slot,
      tlsAvailable: !!tls && !spec.ssl, secured: spec.ssl || !!addr.proxiedSsl, trusted: !!addr.trusted,
      startTls: tls ? () => serverStartTls(socket, () => tls.current()) : undefined,
    });
    this.sessions.add(session);
    socket.once('close', () => this.sessions.delete(session));
    session.start();
    return session;
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.kick();
    await this.auth.close();
  }
}
