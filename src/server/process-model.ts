/**
 * Dovecot's process model when Sealmail is started as root on a tree
 * without `mail_uid` (ISPmail: uid/gid come from the userdb only): a root
 * master that binds, spawns and supervises (root-master.ts); imap-login
 * processes as `default_login_user` (login-process.ts); an auth process as
 * `default_internal_user` (auth-process.ts); mail processes, one pool per
 * userdb uid:gid, as that uid (mail-process.ts). This file holds what they
 * share: the roles, the IPC messages and how a child is started.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Fields } from '../auth/databases.js';
import type { QuotaRefusal } from '../lmtp/delivery.js';
import { logFdsForChild } from '../log/logger.js';
import type { ConfigFilesSnapshot } from '../config/privileged-files.js';
import type { ListenerSpec } from './listeners.js';
import type { Admission } from '../config/connection-limits.js';
import { resolveUser, type Identity } from '../util/passwd.js';
import type { StatsBatch } from '../util/stats-events.js';
import type { CacheFlushMessage } from './auth-cache-flush.js';
import type { PenaltyDumpMessage } from './penalty-dump.js';
import type { LogErrorMessage } from '../log/log-error-buffer.js';

export type Role = 'login' | 'auth' | 'mail' | 'lmtp';
/** The command-line flag that makes `sealmail` one of the children (internal). */
export const ROLE_FLAG: Record<Role, string> = { login: '--login-process', auth: '--auth-process', mail: '--mail-process', lmtp: '--lmtp-process' };

/** One recipient's copy, from the LMTP front process to the mail process of the recipient's uid. */
export interface DeliveryRequest {
  id: number; user: string; fields: Fields; detail: string; rcpt: string; mailFrom: string; heloName: string; rip: string; sessionId: string; single: boolean;
  /**
   * The message's first bytes as spooled (LF line ends, up to SPOOL_MEMORY_LIMIT), base64 over the JSON
   * channel: the whole message unless `streamed`, when the rest comes over a copy socket (lmtp-copy.ts).
   * `size` and the CRLF size (for the quota check) are the whole message's.
   */
  head: string; size: number; crlfSize: number; streamed: boolean;
}
/**
 * A quota check asked of the mail process of the user's uid: quota-status's (Postfix's policy check:
 * does `size` fit?) or lmtp_rcpt_check_quota's at RCPT (`rcpt`: is the user over quota already?).
 */
export interface QuotaRequest { id: number; user: string; fields: Fields; size: number; rcpt?: true }
/**
 * quota-status: the policy action when over quota, null when it fits; RCPT: the refusal (code and text), null
 * when not over quota. `error` when the user's mail could not be opened or the usage read, `reason` for the log.
 */
export type QuotaReply = { action: string | null } | { over: QuotaRefusal | null } | { error: true; reason?: string };
export type DeliveryReply = { ok: true } | { ok: false; temp: boolean; code: string; text: string };

/** What a login process asks of the master after the auth process accepted a login. */
/** `session`: the login process's session id, which the mail process's log prefix carries (imap(user)<pid><session>). */
export interface LoginRequest { id: number; protocol: 'imap' | 'sieve' | 'pop3'; authRef: string; user: string; password: string; mech: string; tag: string; rip: string; lip: string; secured: boolean; capabilityAsked: boolean; session: string }

/** The master counts the connections of each protocol apart (connection-table.ts). */
export type ConnProto = 'imap' | 'sieve' | 'pop3';

export type ChildMessage =
  /** master → child, first: the files read as root this child may see (privileged-files.ts) */
  | { t: 'init'; files: ConfigFilesSnapshot; loginSocket?: string; authSocket?: string; copySocket?: string; spoolDir?: string }
  | { t: 'ready' }
  /** master → login process: a client connection, unread; `id` is its entry in the master's ConnectionTable of `proto` */
  | { t: 'conn'; spec: ListenerSpec; id: number }
  /** login process → master: may this authenticated user's session start (counted when ok)? the connection ended */
  | { t: 'admit'; proto: ConnProto; id: number; user: string }
  | { t: 'admitted'; proto: ConnProto; id: number; verdict: Admission }
  | { t: 'conn-closed'; proto: ConnProto; id: number }
  /** master → login process: drop this unauthenticated connection, the login service is full ("Connection queue full") */
  | { t: 'evict'; proto: ConnProto; id: number }
  /** login process → master: authenticated, move the session to a mail process */
  | { t: 'login'; req: LoginRequest }
  /** master → login process: connect to the login socket and send `key` (go), or the login failed there */
  | { t: 'login-go'; id: number; key: string; mpid: number }
  | { t: 'login-failed'; id: number; reason: 'init' | 'internal' }
  /** auth process → master (root master): is this an app password of the user with this home? (the auth process cannot read homes) */
  | { t: 'app-password'; id: number; home: string; password: string }
  | { t: 'app-password-reply'; id: number; hit: { id: string; name: string } | null }
  /** master → auth process: a connection to the auth-client socket; a userdb lookup */
  | { t: 'auth-conn'; kind: 'login' | 'auth' | 'auth-userdb' }
  | { t: 'userdb'; id: number; authRef: string; user: string; service: string; rip: string; lip: string }
  | { t: 'userdb-reply'; id: number; result: 'ok' | 'tempfail' | 'unknown'; fields: Fields }
  /** master → mail process: the proxied session of a login (the handle is the login process's connection) */
  | { t: 'session'; req: LoginRequest; fields: Fields; sid?: number }
  /** mail process → master: session `sid` ended; master → mail process: sealadm kick of `sid` */
  | { t: 'session-end'; sid: number }
  | { t: 'kick'; sid: number }
  /** master → any child after a reload: no new connections will come, exit when the last one ends (retire.ts) */
  | { t: 'retire' }
  /** master → lmtp process: an LMTP connection; lmtp → master → mail process: a copy to store; and the reply back */
  | { t: 'lmtp-conn'; kind: 'lmtp' | 'quota-status' }
  | { t: 'deliver'; req: DeliveryRequest }
  /** master → lmtp process: connect to the copy socket and send `key`; the socket then goes to the mail process (lmtp-copy.ts) */
  | { t: 'copy-go'; id: number; key: string }
  | { t: 'delivered'; id: number; result: DeliveryReply }
  | { t: 'quota'; req: QuotaRequest }
  /** lmtp process → master: a slot of lmtp_user_concurrency_limit for `user`? one let go; the master's answer (user-concurrency.ts) */
  | { t: 'user-slot'; id: number; user: string; limit: number }
  | { t: 'user-slot-free'; user: string }
  | { t: 'user-slot-reply'; id: number; ok: boolean }
  | { t: 'quota-reply'; id: number; result: QuotaReply }
  /** any child → master: finished events for the `metric {}` counters (stats-metrics.ts) */
  | { t: 'stats'; batch: StatsBatch }
  /** sealadm auth cache flush (auth-cache-flush.ts) */
  | CacheFlushMessage
  /** sealadm penalty: master → auth process and back (penalty-dump.ts) */
  | PenaltyDumpMessage
  /** any child → master: a warning/error line, for sealadm log errors (log-error-buffer.ts) */
  | LogErrorMessage
  | { t: 'shutdown' };

/** `default_login_user` / `default_internal_user`, as Dovecot's master-settings.c checks them at start. */
export function serviceUser(setting: 'default_login_user' | 'default_internal_user', name: string): Identity {
  const id = resolveUser(name);
  if (!id) throw new Error(`${setting} doesn't exist: ${name}`);
  return id;
}

/**
 * Fork `script` as one of the roles, running as `as` (libuv drops the
 * supplementary groups with the setgid/setuid), with the master's log files
 * inherited (logger.ts).
 */
export function forkChild(script: string, role: Role, args: string[], as: { uid: number; gid: number }): ChildProcess {
  const logs = logFdsForChild(4);
  return fork(script, [ROLE_FLAG[role], ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...logs.stdio],
    env: { ...process.env, ...logs.env },
    serialization: 'json',
    uid: as.uid,
    gid: as.gid,
  });
}

/** Send over IPC, quietly dropping what a dying peer can no longer take. */
export function sendTo(child: { connected: boolean; send?: ChildProcess['send'] } | NodeJS.Process, m: ChildMessage, handle?: import('node:net').Socket): void {
  if (!child.connected || !child.send) { handle?.destroy(); return; }
  child.send(m, handle as never, { keepOpen: false } as never, (e: Error | null) => { if (e) handle?.destroy(); });
}
