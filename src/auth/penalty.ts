/**
 * The client-facing timing rules of Dovecot's auth: every failed login is
 * answered after auth_failure_delay (unless the passdb said nodelay), and an
 * IP with recent failures waits longer before its next attempt is even
 * looked at (the anvil "auth penalty": 2 s doubling per failure up to 15 s,
 * forgotten after a success or an hour). The protocol listeners (IMAP, the
 * Postfix auth socket) call this; lookups from sealadm never wait.
 */
const PENALTY_INIT_MS = 2000;
const PENALTY_MAX_MS = 15_000;
const PENALTY_FORGET_MS = 3_600_000;

export class AuthPenalty {
  private readonly byIp = new Map<string, { count: number; last: number }>();
  /**
   * Told of every local change, so that processes sharing one server can
   * replay it (Dovecot has a single anvil; IMAP workers relay through the master).
   */
  onChange?: (op: 'failed' | 'succeeded', ip: string, now: number) => void;

  /** Replay a change another process made. */
  apply(op: 'failed' | 'succeeded', ip: string, now: number): void {
    if (op === 'failed') this.record(ip, now); else this.byIp.delete(ip);
  }

  /** Delay before handling a new request from this IP. */
  delayBefore(ip: string | undefined, now = Date.now()): number {
    if (!ip) return 0;
    const p = this.byIp.get(ip);
    if (!p) return 0;
    if (now - p.last > PENALTY_FORGET_MS) {
      this.byIp.delete(ip);
      return 0;
    }
    return Math.min(PENALTY_MAX_MS, PENALTY_INIT_MS * 2 ** (p.count - 1));
  }

  failed(ip: string | undefined, now = Date.now()): void {
    if (!ip) return;
    this.record(ip, now);
    this.onChange?.('failed', ip, now);
  }

  succeeded(ip: string | undefined): void {
    if (!ip || !this.byIp.has(ip)) return;
    this.byIp.delete(ip);
    this.onChange?.('succeeded', ip, Date.now());
  }

  private record(ip: string, now: number): void {
    const p = this.byIp.get(ip) ?? { count: 0, last: now };
    p.count++;
    p.last = now;
    this.byIp.set(ip, p);
  }
}

/** Time to wait before answering a failure: auth_failure_delay, or 0 with nodelay. */
export function failureDelayMs(configuredMs: number, nodelay: boolean): number {
  return nodelay ? 0 : configuredMs;
}
