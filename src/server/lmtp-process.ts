/**
 * An LMTP front process of the root master mode (root-master.ts: one per
 * core, lmtp_user_concurrency_limit counted by the master), running
 * as `default_internal_user` with no access to mail: it speaks LMTP with
 * the ordinary LmtpSession (RCPT lookups in its own userdb, DATA spooled),
 * and has each recipient's copy stored by the mail process of that
 * recipient's uid, through the master, which checks the uid as for a login.
 * Dovecot's lmtp switches its effective uid per recipient instead; in Node a
 * seteuid applies to the whole process and its I/O threads while other
 * deliveries are in flight, so the copy travels to a process that already is
 * the user's uid: streamed from this process's spool over a socket the
 * master hands to the mail process (lmtp-copy.ts: never whole in memory in
 * any of the three), or inside the IPC message when it fits the spool's
 * in-memory head. The password-less mail-crypt delivery (public key) and
 * Sieve run in the mail process. quota-status (Postfix's
 * policy check) is served here too, its usage read by the mail process of
 * the recipient's uid, and so is lmtp_rcpt_check_quota's test at RCPT.
 */
import type { Socket } from 'node:net';
import type { DovecotConfig } from '../config/settings.js';
import { AuthEngine } from '../auth/engine.js';
import { LmtpSession } from '../lmtp/session.js';
import type { DeliveryInput, DeliveryResult, OverQuotaCheck } from '../lmtp/delivery.js';
import { sendTo, type ChildMessage, type DeliveryReply, type QuotaReply } from './process-model.js';
import { QuotaStatusSession } from '../quota-status/session.js';
import type { Fields } from '../auth/databases.js';
import { Logger } from '../log/logger.js';
import { offerCopy, streamed } from './lmtp-copy.js';
import { Liveness } from './retire.js';
import { answerFlush } from './auth-cache-flush.js';
import { RemoteUserSlots } from '../lmtp/user-concurrency.js';

/**
 * `copySocket`: the master's socket the streamed copies go through (lmtp-copy.ts);
 * `spoolDir`: where messages are spooled when not mail_temp_dir (lmtp-spool-dir.ts).
 */
export function runLmtpProcess(config: DovecotConfig, copySocket: string, spoolDir?: string): void {
  const auth = new AuthEngine(config, 'lmtp');
  let quotaEngine: AuthEngine | null = null;
  const quotaAuth = () => (quotaEngine ??= new AuthEngine(config, 'lmtp'));
  /** Copies sent to the master, by id: whom to answer, and the message a 'copy-go' streams. */
  const waiting = new Map<number, { resolve: (r: DeliveryReply) => void; d: DeliveryInput }>();
  const live = new Liveness(); // LMTP and quota-status connections: a retired process exits after the last
  // lmtp_user_concurrency_limit: counted by the master over every LMTP process
  const userSlots = new RemoteUserSlots((id, user, limit) => sendTo(process, { t: 'user-slot', id, user, limit }), (user) => sendTo(process, { t: 'user-slot-free', user }));
  let nextId = 0;
  const deliverRemote = async (d: DeliveryInput): Promise<DeliveryResult> => {
    const u = await d.auth.lookupUser(d.user, { service: 'lmtp' });
    if (u.result !== 'ok') return { ok: false, temp: true, code: '451 4.3.0', text: 'Temporary user lookup failure' };
    const m = d.message;
    const id = ++nextId;
    return new Promise((resolve) => {
      waiting.set(id, { resolve, d });
      sendTo(process, { t: 'deliver', req: { id, user: u.user, fields: u.fields, detail: d.detail, rcpt: d.rcpt, mailFrom: d.mailFrom, heloName: d.heloName, rip: d.rip, sessionId: d.sessionId, single: d.single, head: m.head.toString('base64'), size: m.size, crlfSize: m.crlfSize, streamed: streamed(m) } });
    });
  };
  /** The master has a mail process ready for copy `id`: stream it until that copy is answered. */
  const streamCopy = (id: number, key: string) => {
    const w = waiting.get(id);
    if (!w) return;
    const s = offerCopy(copySocket, key, w.d.message, (text) => Logger.forUser('lmtp', w.d.user).error(text));
    waiting.set(id, { d: w.d, resolve: (r) => { s.destroy(); w.resolve(r); } });
  };
  const quotaWaits = new Map<number, (r: QuotaReply) => void>();
  /** quota-status: the usage is read by the mail process of the user's uid. */
  const overQuotaRemote = (_config: DovecotConfig, user: string, fields: Fields, size: number) => new Promise<string | null>((resolve, reject) => {
    const id = ++nextId;
    quotaWaits.set(id, (r) => ('action' in r ? resolve(r.action) : reject(new Error('the usage could not be read (see the log)'))));
    sendTo(process, { t: 'quota', req: { id, user, fields, size } });
  });
  /** lmtp_rcpt_check_quota at RCPT: "over quota already?" asked of the mail process of the user's uid. */
  const overQuotaAtRcpt: OverQuotaCheck = (_config, user, fields) => new Promise((resolve, reject) => {
    const id = ++nextId;
    quotaWaits.set(id, (r) => {
      if ('over' in r) resolve(r.over);
      else reject(new Error('error' in r && r.reason ? r.reason : 'the mail process of the user\'s uid did not answer (see the log)'));
    });
    sendTo(process, { t: 'quota', req: { id, user, fields, size: 0, rcpt: true } });
  });
  process.on('message', (m: ChildMessage, handle?: unknown) => {
    if (m.t === 'auth-cache-flush') { answerFlush(m, (r) => sendTo(process, r)); return; }
    if (m.t === 'lmtp-conn' && handle) {
      const s = handle as Socket;
      s.on('error', () => s.destroy());
      live.track(s);
      if (m.kind === 'quota-status') { new QuotaStatusSession(s, config, quotaAuth(), overQuotaRemote); return; }
      s.setNoDelay(true);
      new LmtpSession(s, config, auth, s.remoteAddress?.replace(/^::ffff:/, '') ?? '', deliverRemote, overQuotaAtRcpt, userSlots.take, spoolDir);
    } else if (m.t === 'delivered') { waiting.get(m.id)?.resolve(m.result); waiting.delete(m.id); }
    else if (m.t === 'copy-go') streamCopy(m.id, m.key);
    else if (m.t === 'quota-reply') { quotaWaits.get(m.id)?.(m.result); quotaWaits.delete(m.id); }
    else if (m.t === 'user-slot-reply') userSlots.answered(m.id, m.ok);
    else if (m.t === 'shutdown') void auth.close().finally(() => process.exit(0));
    else if (m.t === 'retire') live.retire();
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => undefined);
  sendTo(process, { t: 'ready' });
}
