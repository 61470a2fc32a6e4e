/**
 * The Postfix-facing services (ispmail-integration.md §1): LMTP on the unix
 * and inet listeners of `service lmtp` (private/dovecot-lmtp in ISPmail) and
 * the auth client protocol on `service auth` unix listeners (private/auth),
 * Dovecot's quota-status policy service on `service quota-status` (private/quota-status),
 * with the owner, group and mode the config gives, and the auth master
 * protocol on `service auth`'s `auth-userdb` listener (Dovecot's default
 * one when the section doesn't name it) for Dovecot's own dovecot-lda and
 * doveadm running beside Sealmail (ISPmail's quota-warning.sh). The other
 * Dovecot-internal auth sockets (auth-master, login/…) are not served:
 * nothing but Dovecot's own processes talk to them.
 *
 * The master opens these listeners as root (owner and mode as configured)
 * and hands each connection to the supervised process of its service
 * (service-pool.ts): lmtp, auth (the client socket and auth-userdb) and
 * quota-status each run in processes of their own, so a crash in one never
 * takes another down, as with Dovecot's separate services.
 */
import { isAbsolute, join, basename } from 'node:path';
import type { Socket } from 'node:net';
import { AuthEngine } from '../auth/engine.js';
import { AuthPenalty } from '../auth/penalty.js';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import { AuthClientSession } from '../authsock/server.js';
import { AuthUserdbSession } from '../authsock/userdb.js';
import { LmtpSession } from '../lmtp/session.js';
import { localSlots, type UserSlotTaker } from '../lmtp/user-concurrency.js';
import { QuotaStatusSession } from '../quota-status/session.js';
import { parseListen, type ListenerSpec, type UnixListenerSpec } from './listeners.js';
import { resolveGroup, resolveUser } from './privileges.js';

const INTERNAL_AUTH = new Set(['auth-master', 'auth-login', 'auth-worker']);

/** A listener's user/group as the master reads them: `$default_internal_user` names another setting. */
const ownerSetting = (config: DovecotConfig, v: string | undefined) => (v?.startsWith('$') ? config.get(v.slice(1)) : v ?? '');

export function unixListenerSpecs(config: DovecotConfig, service: 'lmtp' | 'auth' | 'quota-status'): UnixListenerSpec[] {
  const baseDir = config.get('base_dir') || '/run/dovecot';
  const out: UnixListenerSpec[] = [];
  for (const svc of config.services()) {
    if (svc.name !== service) continue;
    for (const l of svc.unixListeners) {
      if (service === 'auth' && (INTERNAL_AUTH.has(basename(l.path)) || l.path.includes('login/') || l.path.startsWith('token-login'))) continue;
      const user = ownerSetting(config, l.user);
      const group = ownerSetting(config, l.group);
      let uid = user ? resolveUser(user)?.uid : undefined;
      let gid = group ? resolveGroup(group) ?? undefined : undefined;
      let mode = parseInt(l.mode ?? '0600', 8);
      const kind = service === 'auth' && basename(l.path) === 'auth-userdb' ? 'auth-userdb' : service;
      if (kind === 'auth-userdb' && mode === 0o666) {
        // Dovecot answers the clients of a 0666 auth-userdb by their peer uid (SO_PEERCRED: only users whose
        // userdb uid is theirs), which Node cannot read: only the mail user (dovecot-lda in quota-warning.sh) and root may connect
        // no mail_uid (root master, uid from the userdb): root only, there is no single mail user to give it to
        const mail = config.get('mail_uid') ? resolveUser(config.get('mail_uid')) : null;
        mode = 0o600;
        uid = mail?.uid;
        gid = config.get('mail_gid') ? resolveGroup(config.get('mail_gid')) ?? mail?.gid : mail?.gid;
      }
      out.push({ service: kind, path: isAbsolute(l.path) ? l.path : join(baseDir, l.path), mode, uid, gid });
    }
  }
  return out;
}

/** The unix listeners the master opens for lmtp (when `protocols` has lmtp), auth and quota-status. */
export function deliveryUnixSpecs(config: DovecotConfig): UnixListenerSpec[] {
  const lmtp = config.get('protocols').split(/\s+/).includes('lmtp');
  return [...(lmtp ? unixListenerSpecs(config, 'lmtp') : []), ...unixListenerSpecs(config, 'auth'), ...unixListenerSpecs(config, 'quota-status')];
}

/** The pool (Dovecot service) that serves a delivery listener: auth-userdb is a listener of `service auth`. */
export const deliveryService = (listener: string): 'lmtp' | 'auth' | 'quota-status' => (listener === 'auth-userdb' ? 'auth' : listener as 'lmtp' | 'auth' | 'quota-status');

export function lmtpInetSpecs(config: DovecotConfig): ListenerSpec[] {
  const listen = parseListen(config.get('listen'));
  const specs: ListenerSpec[] = [];
  for (const svc of config.services()) {
    if (svc.name !== 'lmtp') continue;
    for (const l of svc.inetListeners) {
      const port = Number(l.port ?? 0);
      if (!port) continue;
      for (const address of l.address ? parseListen(l.address) : listen) specs.push({ service: 'lmtp', name: l.name, address, port, ssl: false });
    }
  }
  return specs;
}

export class DeliveryServices {
  private readonly lmtpAuth: AuthEngine;
  private readonly smtpAuth: AuthEngine;
  /** auth-userdb: each request names its service; the engine's own protocol only picks `protocol X {}` auth settings. */
  private readonly userdbAuth: AuthEngine;
  /** The Postfix auth socket's per-IP penalty: shared with every other process through the master. */
  readonly penalty = new AuthPenalty();
  private readonly log = new Logger('auth');

  constructor(readonly config: DovecotConfig) {
    this.lmtpAuth = new AuthEngine(config, 'lmtp');
    this.smtpAuth = new AuthEngine(config, 'smtp');
    this.userdbAuth = new AuthEngine(config, 'lda');
  }

  /** lmtp_user_concurrency_limit's count: this process's own, or the master's (useUserSlots). */
  private userSlots: UserSlotTaker = localSlots;

  useUserSlots(taker: UserSlotTaker): void { this.userSlots = taker; }

  acceptLmtp(s: Socket): void {
    s.on('error', () => s.destroy());
    // replies are small writes answered by the client's next command: Nagle would hold each for the peer's delayed ACK (40 ms)
    s.setNoDelay(true);
    new LmtpSession(s, this.config, this.lmtpAuth, s.remoteAddress?.replace(/^::ffff:/, '') ?? '', undefined, undefined, this.userSlots);
  }

  acceptQuotaStatus(s: Socket): void {
    s.on('error', () => s.destroy());
    new QuotaStatusSession(s, this.config, this.lmtpAuth);
  }

  acceptAuthUserdb(s: Socket): void {
    s.on('error', () => s.destroy());
    new AuthUserdbSession(s, this.userdbAuth, this.log);
  }

  acceptAuth(s: Socket): void {
    s.on('error', () => s.destroy());
    new AuthClientSession(s, this.config, this.smtpAuth, this.penalty, this.log);
  }

  /** A connection the master handed over (service-pool.ts), served by the listener's service. */
  acceptHandedOff(s: Socket, spec: ListenerSpec): void {
    switch (spec.service) {
      case 'lmtp': this.acceptLmtp(s); break;
      case 'auth': this.acceptAuth(s); break;
      case 'auth-userdb': this.acceptAuthUserdb(s); break;
      case 'quota-status': this.acceptQuotaStatus(s); break;
      default: s.destroy();
    }
  }

  async close(): Promise<void> {
    await this.lmtpAuth.close(); // closes every SQL backend of the process
  }
}
