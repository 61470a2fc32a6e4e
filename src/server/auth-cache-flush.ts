/**
 * `sealadm auth cache flush` across processes. Dovecot keeps one passdb
 * cache in its auth process and answers the auth-master CACHE-FLUSH with the
 * number of entries removed (auth-master-connection.c). Sealmail's caches
 * live in every process that authenticates (the auth and LMTP processes of
 * the root master, every service pool worker): the master asks each of them,
 * and counts each key once, so a user cached by two protocols' engines is
 * one entry, as in Dovecot's single cache.
 */
import type { ChildProcess } from 'node:child_process';
import { flushAuthCaches } from '../auth/cache.js';
import { askChild, childAnswered } from './child-ask.js';

export type CacheFlushMessage =
  /** master → process: flush these users' entries (all when empty) */
  | { t: 'auth-cache-flush'; id: number; users: string[] }
  /** process → master: the keys it removed */
  | { t: 'auth-cache-flushed'; id: number; keys: string[] };

/** Ask one child; resolves with its keys, or none when it exits or stays silent. */
export function askFlush(child: ChildProcess, users: string[]): Promise<string[]> {
  return askChild<string[]>(child, (id) => ({ t: 'auth-cache-flush', id, users } satisfies CacheFlushMessage), []);
}

/** A child's answer, from its 'message' handler. */
export function flushAnswered(id: number, keys: string[]): void {
  childAnswered(id, keys);
}

/** The master: its own caches and its children's, each key counted once. */
export async function flushEverywhere(children: ChildProcess[], users: string[]): Promise<number> {
  const all = new Set(flushAuthCaches(users));
  for (const keys of await Promise.all(children.map((c) => askFlush(c, users)))) for (const k of keys) all.add(k);
  return all.size;
}

/** A child: flush this process's caches and answer the master. */
export function answerFlush(m: { id: number; users: string[] }, send: (m: CacheFlushMessage) => void): void {
  send({ t: 'auth-cache-flushed', id: m.id, keys: flushAuthCaches(m.users) });
}
