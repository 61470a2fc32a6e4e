/**
 * The master's count of one protocol's connections (IMAP, ManageSieve), the
 * one place the limits of config/connection-limits.ts are decided, so they
 * hold across IMAP worker processes:
 *
 * - unauthenticated connections beyond the login service's cap: the oldest
 *   unauthenticated one is told to go ("Connection queue full", as
 *   imap-login's client_destroy_oldest) and the master warns as Dovecot's
 *   does (service_log_drop_warning: at most once a second);
 * - a login beyond mail_max_userip_connections (same user, same remote IP,
 *   this protocol) is refused (`userip`), as the login process's anvil
 *   lookup does; one beyond the logged-in service's cap is refused (`full`)
 *   with the master's warning for that service.
 *
 * Synchronous and free of I/O: the caller delivers the eviction (directly
 * to a session, or to the worker that holds it).
 */
import type { Admission, ConnectionAddresses, ProtocolLimits } from '../config/connection-limits.js';
import type { Logger } from '../log/logger.js';

/** Dovecot's SERVICE_DROP_WARN_INTERVAL_SECS. */
const WARN_INTERVAL_MS = 1000;

interface Entry {
  id: number;
  addr: ConnectionAddresses;
  owner: unknown;
  evict: () => void;
  /** `ip/user` once logged in. */
  userip: string | null;
  user: string;
}

export class ConnectionTable {
  /** Insertion order = age: the first unauthenticated entry is the oldest. */
  private readonly entries = new Map<number, Entry>();
  private readonly perUserIp = new Map<string, number>();
  private unauthenticated = 0;
  private sessions = 0;
  private nextId = 1;
  private readonly lastWarning = new Map<string, number>();

  /** `limits` is replaced on a reload (service-processes.ts): the counts so far stay. */
  constructor(public limits: ProtocolLimits, private readonly log: Logger) {}

  /**
   * A new connection (`addr`: remote and local IP); `evict` ends it with "Connection queue
   * full" should it be the oldest unauthenticated one when the login
   * service is full. `owner` groups entries that end together (a worker).
   */
  open(addr: ConnectionAddresses, evict: () => void, owner: unknown = null): number {
    if (this.unauthenticated >= this.limits.login.cap) {
      this.warn(this.limits.login.warning);
      for (const e of this.entries.values()) {
        if (e.userip !== null) continue;
        this.close(e.id);
        e.evict();
        break;
      }
    }
    const id = this.nextId++;
    this.entries.set(id, { id, addr, owner, evict, userip: null, user: '' });
    this.unauthenticated++;
    return id;
  }

  /** An authenticated login on connection `id` asks to start its session. */
  admit(id: number, user: string): Admission {
    const e = this.entries.get(id);
    if (!e) return 'full'; // already closed or evicted: nothing to admit
    if (e.userip !== null) return 'ok';
    const key = `${e.addr.rip}/${user}`;
    const max = this.limits.userip(e.addr);
    if (max > 0 && (this.perUserIp.get(key) ?? 0) >= max) return 'userip';
    if (this.sessions >= this.limits.sessions.cap) { this.warn(this.limits.sessions.warning); return 'full'; }
    e.userip = key;
    e.user = user;
    this.perUserIp.set(key, (this.perUserIp.get(key) ?? 0) + 1);
    this.unauthenticated--;
    this.sessions++;
    return 'ok';
  }

  close(id: number): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    if (e.userip === null) { this.unauthenticated--; return; }
    this.sessions--;
    const n = (this.perUserIp.get(e.userip) ?? 1) - 1;
    if (n > 0) this.perUserIp.set(e.userip, n); else this.perUserIp.delete(e.userip);
  }

  /** Every connection of `owner` is gone (its worker process died). */
  closeOwner(owner: unknown): void {
    for (const e of [...this.entries.values()]) if (e.owner === owner) this.close(e.id);
  }

  /** The logged-in sessions, oldest first (sealadm who/kick, the admin socket). */
  loggedIn(): { id: number; user: string; rip: string; owner: unknown }[] {
    const out: { id: number; user: string; rip: string; owner: unknown }[] = [];
    for (const e of this.entries.values()) if (e.userip !== null) out.push({ id: e.id, user: e.user, rip: e.addr.rip, owner: e.owner });
    return out;
  }

  get counts(): { unauthenticated: number; sessions: number } {
    return { unauthenticated: this.unauthenticated, sessions: this.sessions };
  }

  private warn(text: string): void {
    const now = Date.now();
    if ((this.lastWarning.get(text) ?? -Infinity) + WARN_INTERVAL_MS > now) return;
    this.lastWarning.set(text, now);
    this.log.warn(text);
  }
}
