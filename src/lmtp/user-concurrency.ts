/**
 * `lmtp_user_concurrency_limit` (Dovecot 2.3 lmtp-local.c): how many
 * recipients of one user may be between an accepted RCPT and the end of
 * their delivery at once, over all LMTP connections. Dovecot counts them in
 * anvil (CONNECT when a RCPT is accepted, DISCONNECT after that recipient's
 * delivery or when the transaction is dropped). LMTP runs in several
 * processes (one per core, service-pool.ts and root-master.ts), so the count
 * is the master's, as anvil's is: a process asks it over IPC at RCPT
 * (UserSlotTaker) and says when the slot is let go; a process that dies
 * gives back all of its slots. A session served in the master itself (or in
 * a test) counts in `localSlots`. 0 (the default) counts nothing and asks
 * no one.
 */

/** A RCPT's hold on one of its user's slots; `release` is idempotent. */
export interface UserSlot { release(): void }

const NONE: UserSlot = { release: () => undefined };

/** Takes a slot for `user` under `limit` (> 0), or null when all are taken. */
export type UserSlotTaker = (user: string, limit: number) => Promise<UserSlot | null>;

/**
 * The counts, by user, of slots held by each owner (a process, or null for
 * this one's sessions): Dovecot then answers `451 4.3.0 <rcpt> Too many
 * concurrent deliveries for user` to the RCPT that finds them all taken.
 */
export class UserConcurrency {
  private readonly active = new Map<string, number>();
  private readonly byOwner = new Map<unknown, Map<string, number>>();

  /** One slot of `user` for `owner` when fewer than `limit` are taken. */
  take(user: string, limit: number, owner: unknown = null): boolean {
    const n = this.active.get(user) ?? 0;
    if (n >= limit) return false;
    this.active.set(user, n + 1);
    let mine = this.byOwner.get(owner);
    if (!mine) this.byOwner.set(owner, (mine = new Map()));
    mine.set(user, (mine.get(user) ?? 0) + 1);
    return true;
  }

  /** One slot of `user` held by `owner` let go (nothing when it holds none). */
  release(user: string, owner: unknown = null): void {
    const mine = this.byOwner.get(owner);
    const held = mine?.get(user) ?? 0;
    if (!held) return;
    if (held > 1) mine!.set(user, held - 1); else mine!.delete(user);
    if (!mine!.size) this.byOwner.delete(owner);
    const left = (this.active.get(user) ?? 1) - 1;
    if (left > 0) this.active.set(user, left); else this.active.delete(user);
  }

  /** Every slot `owner` held (a process that died: its deliveries ended with it). */
  releaseOwner(owner: unknown): void {
    const mine = this.byOwner.get(owner);
    if (!mine) return;
    for (const [user, n] of mine) for (let i = 0; i < n; i++) this.release(user, owner);
  }

  /** Slots taken for `user` (tests). */
  count(user: string): number { return this.active.get(user) ?? 0; }
}

/** A slot that gives itself back once, through `giveBack`. */
function slotOf(giveBack: () => void): UserSlot {
  let held = true;
  return { release() { if (held) { held = false; giveBack(); } } };
}

/** This process's own count (LMTP served here, no master to ask). */
const local = new UserConcurrency();

export const localSlots: UserSlotTaker = async (user, limit) => (local.take(user, limit) ? slotOf(() => local.release(user)) : null);

/**
 * The slot for a RCPT: none counted when `limit` is 0 (nothing asked),
 * else from `taker` (the master's count, or this process's).
 */
export async function takeUserSlot(user: string, limit: number, taker: UserSlotTaker = localSlots): Promise<UserSlot | null> {
  if (!(limit > 0)) return NONE;
  return taker(user, limit);
}

/**
 * A process's side of the master's count: `ask` sends the request `id` and
 * the reply comes to `answered`; `release` tells the master one slot of
 * `user` is free again.
 */
export class RemoteUserSlots {
  private next = 0;
  private readonly waiting = new Map<number, (ok: boolean) => void>();

  constructor(private readonly ask: (id: number, user: string, limit: number) => void, private readonly giveBack: (user: string) => void) {}

  readonly take: UserSlotTaker = (user, limit) => new Promise((resolve) => {
    const id = ++this.next;
    this.waiting.set(id, (ok) => resolve(ok ? slotOf(() => this.giveBack(user)) : null));
    this.ask(id, user, limit);
  });

  /** The master's verdict on request `id`. */
  answered(id: number, ok: boolean): void {
    this.waiting.get(id)?.(ok);
    this.waiting.delete(id);
  }
}
