/**
 * The client-facing timing rules of Dovecot's auth: every failed login is
 * answered after auth_failure_delay (unless the passdb said nodelay), and an
 * IP with recent failures waits longer before its next attempt is even
 * looked at (the anvil "auth penalty": 2 s doubling per failure up to 15 s,
 * forgotten after a success or an hour). The protocol listeners (IMAP, the
 * Postfix auth socket) call this; lookups from sealadm never wait.
 *
 * Penalties are kept per IPv4 address and per IPv6 /48 (auth-penalty.c's
 * PENALTY_IPV6_MASK_BITS): one client usually has a whole /64 or /48 to
 * itself, so keying on the full address would let it start clean with
 * every new address. An IPv4-mapped IPv6 address counts as its IPv4 address.
 */
import { isIPv4, isIPv6 } from 'node:net';
const PENALTY_INIT_MS = 2000;
const PENALTY_MAX_MS = 15_000;
const PENALTY_FORGET_MS = 3_600_000;
const PENALTY_IPV6_MASK_GROUPS = 3; // 48 bits

/** The anvil key of a client address: IPv4 as is, IPv6 reduced to its /48 ("2001:db8:1::"). */
export function penaltyIdent(ip: string): string {
  const bare = ip.replace(/%.*$/, '');
  if (!isIPv6(bare)) return ip;
  const groups = expandIPv6(bare);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`;
  }
  return `${groups.slice(0, PENALTY_IPV6_MASK_GROUPS).map((g) => g.toString(16)).join(':')}::`;
}

/** The eight 16-bit groups of a valid IPv6 address (with :: and a dotted IPv4 tail). */
function expandIPv6(ip: string): number[] {
  const words = (part: string): number[] => {
    if (!part) return [];
    const out: number[] = [];
    for (const w of part.split(':')) {
      if (isIPv4(w)) {
        const [a, b, c, d] = w.split('.').map(Number);
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(parseInt(w, 16));
    }
    return out;
  };
  const dbl = ip.indexOf('::');
  if (dbl < 0) return words(ip);
  const head = words(ip.slice(0, dbl));
  const tail = words(ip.slice(dbl + 2));
  return [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
}

/**
 * One row of anvil's PENALTY-DUMP (`doveadm penalty`): the ident, the
 * penalty (failures counted), the UNIX time of the last penalty and of the
 * last update. Sealmail counts every failure, so the two times are the same
 * (anvil does not count a repeated user+password again: it only updates).
 */
export interface PenaltyRow { ident: string; penalty: number; lastPenalty: number; lastUpdate: number }

export class AuthPenalty {
  private readonly byIp = new Map<string, { count: number; last: number }>();
  /**
   * Told of every local change, so that processes sharing one server can
   * replay it (Dovecot has a single anvil; IMAP workers relay through the master).
   */
  onChange?: (op: 'failed' | 'succeeded', ip: string, now: number) => void;

  /** Replay a change another process made. */
  apply(op: 'failed' | 'succeeded', ip: string, now: number): void {
    if (op === 'failed') this.record(ip, now); else this.byIp.delete(penaltyIdent(ip));
  }

  /** Delay before handling a new request from this IP. */
  delayBefore(ip: string | undefined, now = Date.now()): number {
    if (!ip) return 0;
    const key = penaltyIdent(ip);
    const p = this.byIp.get(key);
    if (!p) return 0;
    if (now - p.last > PENALTY_FORGET_MS) {
      this.byIp.delete(key);
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
    if (!ip || !this.byIp.has(penaltyIdent(ip))) return;
    this.byIp.delete(penaltyIdent(ip));
    this.onChange?.('succeeded', ip, Date.now());
  }

  /** The rows anvil's PENALTY-DUMP lists: least recently updated first, forgotten ones left out. */
  dump(now = Date.now()): PenaltyRow[] {
    const rows: PenaltyRow[] = [];
    for (const [ident, p] of this.byIp) {
      if (now - p.last > PENALTY_FORGET_MS) continue;
      const secs = Math.floor(p.last / 1000);
      rows.push({ ident, penalty: p.count, lastPenalty: secs, lastUpdate: secs });
    }
    return rows;
  }

  private record(ip: string, now: number): void {
    const key = penaltyIdent(ip);
    const p = this.byIp.get(key) ?? { count: 0, last: now };
    p.count++;
    p.last = now;
    this.byIp.delete(key); // to the end: the dump's order is anvil's, oldest update first
    this.byIp.set(key, p);
  }
}

/** Time to wait before answering a failure: auth_failure_delay, or 0 with nodelay. */
export function failureDelayMs(configuredMs: number, nodelay: boolean): number {
  return nodelay ? 0 : configuredMs;
}
