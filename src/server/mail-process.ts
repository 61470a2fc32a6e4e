/**
 * A mail process (Dovecot's `imap` service after the login): started by the
 * root master for one userdb uid:gid and running as it, it serves every
 * session the master hands it for users of that uid — the login process's
 * proxy connection, with the login request (user, userdb fields, the login
 * password for mail-crypt, kept in memory only, and the LOGIN's tag). It
 * opens the user's mail (imap/login.ts openImapUser: first_valid_uid and
 * last_valid_uid, mail-crypt, quota, metadata, IMAPSieve) and answers the
 * LOGIN as Dovecot's imap process does: `OK [CAPABILITY …] Logged in`, or
 * `OK Logged in, but initialization failed.` and BYE. It also stores the
 * LMTP copies of its uid's users and reads their quota usage for
 * quota-status and lmtp_rcpt_check_quota (lmtp-process.ts).
 */
import type { Socket } from 'node:net';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import { openImapUser, type ImapLogin } from '../imap/login.js';
import { ManageSieveSession } from '../managesieve/session.js';
import { Pop3Session } from '../pop3/session.js';
import { resolveMailUser } from '../mailstore/user-store.js';
import { Session } from '../imap/session.js';
import { faultText } from '../util/fault.js';
import { sendTo, type ChildMessage, type DeliveryReply, type DeliveryRequest, type LoginRequest, type QuotaReply } from './process-model.js';
import { deliver, overQuotaAlready } from '../lmtp/delivery.js';
import { MailAccessRefused } from '../mailuser/open-mail-user.js';
import { overQuotaAction } from '../quota-status/session.js';
import { CopyFromSocket } from './lmtp-copy.js';
import type { AuthEngine } from '../auth/engine.js';
import type { Fields } from '../auth/databases.js';
import { Liveness } from './retire.js';

const INTERNAL = 'Internal error occurred. Refer to server log for more information.';

/**
 * One LMTP recipient's copy (lmtp-process.ts), stored here as the user's uid
 * with the userdb fields the LMTP process found (no second lookup: this
 * process has no userdb). The message is read from the copy socket as the
 * store writes it (lmtp-copy.ts), or is all in the request when small.
 */
function storeCopy(config: DovecotConfig, r: DeliveryRequest, sock: Socket | null): Promise<DeliveryReply> {
  if (r.streamed && !sock) return Promise.reject(new Error('the copy socket is missing'));
  const message = new CopyFromSocket(r.streamed ? sock : null, r.size, r.crlfSize, Buffer.from(r.head, 'base64'));
  const auth = { lookupUser: () => Promise.resolve({ result: 'ok' as const, user: r.user, fields: r.fields }) } as unknown as AuthEngine;
  return deliver({ config, auth, user: r.user, detail: r.detail, rcpt: r.rcpt, mailFrom: r.mailFrom, heloName: r.heloName, rip: r.rip, sessionId: r.sessionId, single: r.single, message });
}

export function runMailProcess(config: DovecotConfig): void {
  const log = new Logger('imap');
  const sessions = new Set<Session>();
  const pop3Sessions = new Set<Pop3Session>();
  /** The master's session ids (sealadm who/kick): reported when they end, kicked on its word. */
  const bySid = new Map<number, { kick(): void }>();
  const live = new Liveness(); // sessions and copies in flight: a retired process exits after the last
  // no logins happen here: a LOGIN after login is answered by the authenticated state's own handler
  const login: ImapLogin = { log, login: () => Promise.resolve({ ok: false, text: INTERNAL }) };

  const serve = async (sock: Socket, req: LoginRequest, fields: Fields, sid = 0) => {
    sock.on('error', () => sock.destroy());
    live.track(sock);
    if (sid) sock.once('close', () => { bySid.delete(sid); sendTo(process, { t: 'session-end', sid }); });
    if (req.protocol === 'sieve') {
      // managesieve: the user's Sieve scripts under the home the userdb gives
      const s = new ManageSieveSession(sock, { config, resolveHome: (u, f) => resolveMailUser(config, u, f, 'sieve').home, tlsAvailable: false, secured: req.secured, remoteIp: req.rip, localIp: req.lip });
      s.startLoggedIn(req.user, fields, req.session);
      if (sid) bySid.set(sid, s);
      return;
    }
    if (req.protocol === 'pop3') {
      // pop3: "+OK Logged in." and the maildrop opened here, as Dovecot's pop3 process does
      const s = new Pop3Session(sock, { config, tlsAvailable: false, secured: req.secured, rip: req.rip, lip: req.lip });
      if (sid) bySid.set(sid, s);
      pop3Sessions.add(s);
      sock.once('close', () => pop3Sessions.delete(s));
      await s.startLoggedIn(req.user, fields, req.password, req.session);
      return;
    }
    const r = await openImapUser(config, req.user, fields, req.password);
    if (!r.ok) {
      const text = 'initFailed' in r ? 'Logged in, but initialization failed.' : null;
      sock.end(text ? `${req.tag} OK ${text}\r\n* BYE ${INTERNAL}\r\n` : `${req.tag} NO [UNAVAILABLE] ${INTERNAL}\r\n`);
      return;
    }
    const session = new Session(sock, {
      config, log: Logger.forUser('imap', req.user, req.session), login, rip: req.rip, lip: req.lip, secured: req.secured,
      preauth: r, loginReply: { tag: req.tag, capabilityAsked: req.capabilityAsked },
    });
    sessions.add(session);
    if (sid && !sock.destroyed) bySid.set(sid, session);
    sock.once('close', () => sessions.delete(session));
    await session.start();
  };

  process.on('message', (m: ChildMessage, handle?: unknown) => {
    if (m.t === 'quota') {
      const done = live.hold();
      const reply = (result: QuotaReply) => { sendTo(process, { t: 'quota-reply', id: m.req.id, result }); done(); };
      if (m.req.rcpt) {
        // lmtp_rcpt_check_quota: the LMTP process logs why the user could not be opened, and answers 451
        overQuotaAlready(config, m.req.user, m.req.fields).then((over) => reply({ over }), (e) => {
          reply({ error: true, reason: e instanceof MailAccessRefused ? e.message : faultText(e).slice(0, 1024) });
        });
        return;
      }
      overQuotaAction(config, m.req.user, m.req.fields, m.req.size).then((action) => reply({ action }), (e) => {
        // quota-status.c's QUOTA_ALLOC_RESULT_TEMPFAIL: the front answers DEFER_IF_PERMIT
        log.error(`quota check of ${m.req.user.slice(0, 256)} failed: ${faultText(e).slice(0, 512)}`);
        reply({ error: true });
      });
    } else if (m.t === 'deliver') {
      const done = live.hold();
      const reply = (result: DeliveryReply) => { sendTo(process, { t: 'delivered', id: m.req.id, result }); done(); };
      const sock = (handle as Socket | undefined) ?? null;
      sock?.on('error', () => sock.destroy());
      storeCopy(config, m.req, sock).then(reply, (e) => {
        log.error(`delivery to ${m.req.user}: ${faultText(e)}`);
        reply({ ok: false, temp: true, code: '451 4.3.0', text: 'Temporary internal error' });
      }).finally(() => sock?.destroy());
    } else if (m.t === 'session' && handle) {
      const sock = handle as Socket;
      serve(sock, m.req, m.fields, m.sid).catch((e) => { log.error(`session of ${m.req.user}: ${faultText(e)}`); sock.destroy(); });
    } else if (m.t === 'kick') bySid.get(m.sid)?.kick();
    else if (m.t === 'retire') live.retire();
    else if (m.t === 'shutdown') {
      for (const s of pop3Sessions) s.kick();
      void Promise.all([...sessions].map((s) => s.bye('Server shutting down.').catch(() => undefined))).finally(() => process.exit(0));
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => undefined);
  sendTo(process, { t: 'ready' });
}
