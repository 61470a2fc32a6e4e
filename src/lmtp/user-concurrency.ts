/**
 * `lmtp_user_concurrency_limit` (Dovecot 2.3 lmtp-local.c): how many
 * recipients of one user may be between an accepted RCPT and the end of
 * their delivery at once, over all LMTP connections. Dovecot counts them in
 * anvil (CONNECT when a RCPT is accepted, DISCONNECT after that recipient's
 * delivery or when the transaction is dropped); LMTP runs in one Sealmail
 * process, so a map here counts the same. 0 (the default) counts nothing.
 */

const active = new Map<string, number>();

/** A RCPT's hold on one of its user's slots; `release` is idempotent. */
export interface UserSlot { release(): void }

const NONE: UserSlot = { release: () => undefined };

/**
 * Takes a slot for `user` when fewer than `limit` are taken (limit 0:
 * unlimited, nothing counted), or null: Dovecot then answers
 * `451 4.3.0 <rcpt> Too many concurrent deliveries for user`.
 */
export function takeUserSlot(user: string, limit: number): UserSlot | null {
  if (!(limit > 0)) return NONE;
  const n = active.get(user) ?? 0;
  if (n >= limit) return null;
  active.set(user, n + 1);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      const left = (active.get(user) ?? 1) - 1;
      if (left > 0) active.set(user, left); else active.delete(user);
    },
  };
}
