/**
 * Dovecot's auth cache (auth_cache_size, auth_cache_ttl,
 * auth_cache_negative_ttl): passdb lookups are remembered per database and
 * user, so a burst of logins does not hit SQL each time. Positive entries
 * keep the stored hash (verification still runs), negative ones remember
 * unknown users; temporary failures are never cached. Size is accounted in
 * bytes of the cached text, like Dovecot's, and the oldest entries go first.
 */
import type { LookupResult } from './databases.js';

interface Entry { result: LookupResult; expires: number; size: number }

/**
 * Every cache of this process, for `sealadm auth cache flush`: Dovecot has
 * one cache in its auth process, a Sealmail process has one per AuthEngine
 * (per protocol). Weak, so an engine a reload replaced is not kept alive.
 */
const live = new Set<WeakRef<AuthCache>>();

/**
 * doveadm auth cache flush [<user> ...] in this process: every entry, or
 * those of the users named; returns the keys removed (the master counts
 * them once across processes and engines, as Dovecot's single cache would).
 */
export function flushAuthCaches(users: string[]): string[] {
  const out = new Set<string>();
  for (const ref of live) {
    const c = ref.deref();
    if (!c) { live.delete(ref); continue; }
    for (const k of c.flushUsers(users)) out.add(k);
  }
  return [...out];
}

export class AuthCache {
  private readonly map = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly maxBytes: number, private readonly ttlMs: number, private readonly negativeTtlMs: number) {
    live.add(new WeakRef(this));
  }

  get enabled(): boolean { return this.maxBytes > 0; }

  get(key: string, now = Date.now()): LookupResult | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.expires <= now) {
      this.delete(key);
      return undefined;
    }
    // Refresh recency: Map iteration order is insertion order.
    this.map.delete(key);
    this.map.set(key, e);
    return e.result;
  }

  put(key: string, result: LookupResult, now = Date.now()): void {
    if (!this.enabled || result.kind === 'tempfail') return;
    const ttl = result.kind === 'unknown' ? this.negativeTtlMs : this.ttlMs;
    if (ttl <= 0) return;
    this.delete(key);
    const size = key.length + (result.kind === 'found' ? result.fields.reduce((n, [k, v]) => n + k.length + v.length + 2, 0) : 0);
    this.map.set(key, { result, expires: now + ttl, size });
    this.bytes += size;
    for (const [k] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.delete(k);
    }
  }

  private delete(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    this.bytes -= e.size;
    this.map.delete(key);
  }

  /** Everything (a password change). */
  flush(): void {
    this.map.clear();
    this.bytes = 0;
  }

  /**
   * The entries of `users` (all when none is named); the keys removed.
   * A key is `db \0 user \0 …` (engine.ts): like auth_cache_node_is_user,
   * the user is compared exactly, case and domain included.
   */
  flushUsers(users: string[]): string[] {
    const gone: string[] = [];
    for (const k of [...this.map.keys()]) {
      if (users.length && !users.includes(k.split('\u0000')[1])) continue;
      gone.push(k);
      this.delete(k);
    }
    return gone;
  }
}
