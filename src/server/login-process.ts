/**
 * An imap-login (and managesieve-login, pop3-login) process (Dovecot's login-common + imap-login), running as
 * `default_login_user` with no access to mail: it gets client connections
 * from the root master unread, does TLS (imaps, STARTTLS) and the whole
 * pre-login dialogue with the ordinary Session (commands/prelogin.ts), asks
 * the auth process over the auth client protocol (auth-client.ts), and after
 * a successful login hands the session to a mail process of the user's uid:
 * the master picks it, this process connects to the master's login socket,
 * which the master passes on to that mail process, and from then on only
 * copies bytes between the client and that socket (as imap-login proxies a
 * TLS connection; plain ones are proxied the same way here). The password
 * goes to the master with the login request over IPC, for mail-crypt.
 *
 * What the client sent after its LOGIN / AUTHENTICATE, before the reply
 * (pipelined commands), goes to the mail process first, as imap-login sends
 * its input buffer along with the fd (login-common's master_send_request).
 * The master counts every connection (root-master.ts): a session starts
 * only once it admits it (mail_max_userip_connections, the mail service's
 * limit, refused with the texts of imap/session.ts and
 * managesieve/session.ts), and it may ask for the oldest pre-login
 * connection to be dropped when the login service is full.
 */
import { connect, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import type { ImapLogin } from '../imap/login.js';
import { clientCertRefusal, imapRoute, type LoginResult } from '../imap/login-result.js';
import { CLIENT_CERT_REFUSED, type RequestInfo } from '../auth/engine.js';
import { Session } from '../imap/session.js';
import type { ListenerSpec, TlsMaterial } from './listeners.js';
import { serverStartTls } from './starttls.js';
import { fromListener, type ClientAddresses } from './haproxy.js';
import { ServerTlsContext } from './tls-context.js';
import { AuthClient } from './auth-client.js';
import type { SessionDeps } from '../managesieve/session.js';
import type { Pop3Deps } from '../pop3/session.js';
import { sendTo, type ChildMessage, type ConnProto, type LoginRequest } from './process-model.js';
import type { Admission, ConnectionSlot } from '../config/connection-limits.js';
import { quickAck } from '../util/tcp-socket.js';
import { Liveness } from './retire.js';

const log = new Logger('imap-login');
const INTERNAL = 'Internal error occurred. Refer to server log for more information.';

export async function runLoginProcess(config: DovecotConfig, material: TlsMaterial | null, sockets: { login: string; auth: string }): Promise<void> {
  // ManageSieve's and POP3's sessions (with the Sieve compiler) only when `protocols` names them:
  // ~6 MiB of code and heap in every login process otherwise. Loaded before 'ready' (the master
  // hands no connection over before it); a reload that adds a protocol starts new login processes.
  const protocols = config.get('protocols').split(/\s+/);
  let sieveMod = protocols.includes('sieve') ? await import('../managesieve/session.js') : null;
  let pop3Mod = protocols.includes('pop3') ? await import('../pop3/session.js') : null;
  // one context for every connection of this process, as imap-login keeps one (tls-context.ts)
  const tls = material ? new ServerTlsContext(material) : null;
  const auth = new AuthClient(sockets.auth);
  const pending = new Map<number, (m: Extract<ChildMessage, { t: 'login-go' | 'login-failed' }>) => void>();
  let nextId = 0;
  const sessions = new Set<Session>();
  /** This process's connections in the master's count, by protocol and id: how to drop one it evicts. */
  const counted = new Map<string, { evict(): void }>();
  const verdicts = new Map<string, (v: Admission) => void>();
  const live = new Liveness(); // client connections, pre-login and proxied: a retired process exits after the last

  /** Connection `id`'s place in the master's count; released once, when the client connection ends. */
  const slot = (proto: ConnProto, id: number, conn: { evict(): void }): ConnectionSlot & { release(): void } => {
    const key = `${proto}/${id}`;
    counted.set(key, conn);
    return {
      admit: (user) => new Promise<Admission>((resolve) => { verdicts.set(key, resolve); sendTo(process, { t: 'admit', proto, id, user }); }),
      release: () => {
        if (!counted.delete(key)) return;
        sendTo(process, { t: 'conn-closed', proto, id });
      },
    };
  };

  const accept = (raw: Socket, spec: ListenerSpec, id: number) => {
    raw.setNoDelay(true);
    raw.on('error', () => raw.destroy());
    live.track(raw);
    const proto: ConnProto = spec.service === 'managesieve-login' ? 'sieve' : spec.service === 'pop3-login' ? 'pop3' : 'imap';
    // a refused PROXY header ends the connection before this process counted it: tell the master
    fromListener(raw, spec, { config, log: proto === 'imap' ? log : new Logger(spec.service), tls: () => tls?.current() ?? null },
      (socket, addr) => connected(socket, raw, spec, id, addr), () => sendTo(process, { t: 'conn-closed', proto, id }));
  };

  const connected = (socket: Socket | TLSSocket, raw: Socket, spec: ListenerSpec, id: number, addr: ClientAddresses) => {
    const { rip, lip } = addr;
    socket.on('error', () => socket.destroy());
    if (spec.service === 'managesieve-login' || spec.service === 'pop3-login') {
      const sieve = spec.service === 'managesieve-login';
      if (sieve ? sieveMod : pop3Mod) { (sieve ? acceptSieve : acceptPop3)(socket, raw, spec, addr, id); return; }
      // not expected (see above), but never a lost connection or count: load it now
      void (sieve ? import('../managesieve/session.js').then((m) => { sieveMod = m; }) : import('../pop3/session.js').then((m) => { pop3Mod = m; })).then(() => {
        if (raw.destroyed) sendTo(process, { t: 'conn-closed', proto: sieve ? 'sieve' : 'pop3', id });
        else (sieve ? acceptSieve : acceptPop3)(socket, raw, spec, addr, id);
      });
      return;
    }
    let session: Session;
    const count = slot('imap', id, { evict: () => session.evict() });
    raw.once('close', () => count.release());
    const login: ImapLogin = {
      log,
      async login(user: string, password: string, info: RequestInfo): Promise<LoginResult> {
        // the session's addresses: a trusted client's ID may have replaced them (prelogin.ts)
        const { rip, lip } = session.opts;
        const lport = session.ports.lport;
        const a = await auth.authenticate(user, password, { service: 'imap', rip, lip, lport, secured: session.secured, loginUser: info.loginUser, session: session.loginSession, validClientCert: info.validClientCert });
        if (!a.ok && a.reason === CLIENT_CERT_REFUSED) return clientCertRefusal(a.reason);
        // the auth reply routes the login elsewhere: a backend (`proxy`) or a referral (`nologin` + `host`)
        const route = imapRoute(config, { fields: a.fields, nologin: !a.ok, reason: a.ok ? undefined : a.reason, user: a.ok ? a.user : user }, password, { ...info, lip, lport });
        if (route.kind !== 'local') return { ok: false, route, user: a.ok ? a.user : user };
        if (!a.ok) {
          // the session logs the failure when the connection ends (its attempts counted), prelogin.ts
          if (a.temp) return { ok: false, code: 'UNAVAILABLE', text: 'Temporary authentication failure.' };
          if (a.reason === CLIENT_CERT_REFUSED) return clientCertRefusal(a.reason);
          return { ok: false, code: 'AUTHENTICATIONFAILED', text: a.reason ?? 'Authentication failed.' };
        }
        return { ok: false, handOff: (tag) => handOff(session, count, { id: ++nextId, protocol: 'imap', authRef: a.ref, user: a.user, password, mech: info.mech ?? 'PLAIN', tag, rip, lip, secured: session.secured, capabilityAsked: session.capabilityAskedBeforeLogin, session: session.loginSession }) };
      },
    };
    const starttls = tls && !spec.ssl ? (d: Duplex) => serverStartTls(d, () => tls.current()) : undefined;
    session = new Session(socket, { config, log: new Logger(`imap-login(${rip})`), login, rip, lip, secured: spec.ssl || addr.proxiedSsl, trusted: addr.trusted, starttls, slot: count });
    sessions.add(session);
    raw.once('close', () => sessions.delete(session));
    void session.start().catch(() => socket.destroy());
  };

  /** After the auth process said OK: the master picks the mail process; the reply says go (with the key) or why not. */
  const askMaster = (req: LoginRequest) => new Promise<Extract<ChildMessage, { t: 'login-go' | 'login-failed' }>>((resolve) => {
    pending.set(req.id, (m) => { pending.delete(req.id); resolve(m); });
    sendTo(process, { t: 'login', req });
  });

  /**
   * From now on the session lives in the mail process: copy bytes both ways
   * through the master's login socket. `input`: what the client sent after
   * its login command (the detached stream is paused: nothing is lost);
   * `release`: the connection leaves the master's count when it ends.
   */
  const proxy = ({ stream: client, input }: { stream: Duplex; input: Buffer }, key: string, release: () => void) => {
    const upstream = connect(sockets.login);
    upstream.on('error', () => { upstream.destroy(); client.destroy(); });
    client.on('error', () => upstream.destroy());
    upstream.write(`${key}\n`);
    // the mail process speaks first (its login reply): only then is anything of the client's passed on,
    // the pipelined commands first, in the order they came
    upstream.once('data', (first: Buffer) => {
      client.write(first);
      if (input.length) upstream.write(input);
      upstream.pipe(client);
      client.pipe(upstream);
      // the client's bytes are ACKed as soon as read: one holding a small write for that ACK (Nagle) never waits 40 ms
      client.on('data', () => quickAck(client));
    });
    upstream.on('close', () => client.destroy());
    client.on('close', () => { upstream.destroy(); release(); });
  };


  const handOff = async (session: Session, count: ConnectionSlot, req: LoginRequest): Promise<void> => {
    // the master's count first (as imap-login asks anvil before the master request)
    if (!await session.admitLogin(req.tag, req.user, req.mech)) return;
    const reply = await askMaster(req);
    if (reply.t === 'login-failed') {
      if (reply.reason === 'init') {
        // imap-login's part succeeded; the mail process logged why the user's mail could not be opened
        session.logHandedOff(req.user, req.mech, 0);
        await session.send({ kind: 'tagged', tag: req.tag, status: 'OK', text: 'Logged in, but initialization failed.' });
        await session.bye(INTERNAL);
      } else {
        session.logLoginRefused('Internal login failure', req.user, req.mech);
        await session.send({ kind: 'tagged', tag: req.tag, status: 'NO', code: { name: 'UNAVAILABLE' }, text: INTERNAL });
      }
      return;
    }
    sessions.delete(session); // it lives in the mail process now
    session.logHandedOff(req.user, req.mech, reply.mpid);
    proxy(session.detach(), reply.key, () => count.release());
  };

  /** A ManageSieve connection (managesieve-login): the same steps, Pigeonhole's texts. */
  const acceptSieve = (socket: Socket | TLSSocket, raw: Socket, spec: ListenerSpec, addr: ClientAddresses, id: number) => {
    const { lip } = addr;
    const count = slot('sieve', id, { evict: () => session.evict() });
    raw.once('close', () => count.release());
    const deps: SessionDeps = {
      config, resolveHome: () => undefined, tlsAvailable: !!tls && !spec.ssl, secured: spec.ssl || addr.proxiedSsl, trusted: addr.trusted, remoteIp: addr.rip, localIp: lip,
      startTls: tls ? () => serverStartTls(raw, () => tls.current()) : undefined, slot: count,
      async login({ mech, authz, login, password, validClientCert }) {
        const rip = deps.remoteIp ?? ''; // XCLIENT may have named the real client
        const a = await auth.authenticate(login, password, { service: 'sieve', rip, lip, secured: deps.secured, loginUser: authz && authz !== login ? authz : undefined, session: session.loginSession, validClientCert });
        if (!a.ok && a.reason === CLIENT_CERT_REFUSED) { session.authFailedWith(a.reason); return; }
        if (!a.ok) {
          session.reply(a.temp ? 'NO (TRYLATER) "Temporary authentication failure."\r\n' : 'NO "Authentication failed."\r\n');
          session.authFailed(login, !!a.temp);
          return;
        }
        if (!await session.admit(a.user, mech)) return;
        const req: LoginRequest = { id: ++nextId, protocol: 'sieve', authRef: a.ref, user: a.user, password, mech, tag: '', rip, lip, secured: deps.secured, capabilityAsked: false, session: session.loginSession };
        const reply = await askMaster(req);
        if (reply.t === 'login-failed') { session.reply(`NO "${INTERNAL}"\r\n`); return; }
        session.logHandedOff(a.user, mech, reply.mpid);
        proxy(session.detach(), reply.key, () => count.release());
      },
    };
    const session = new sieveMod!.ManageSieveSession(socket, deps);
    session.start();
  };

  /** A POP3 connection (pop3-login): the same steps, pop3-login's texts; "+OK Logged in." comes from the mail process. */
  const acceptPop3 = (socket: Socket | TLSSocket, raw: Socket, spec: ListenerSpec, addr: ClientAddresses, id: number) => {
    const { lip } = addr;
    const count = slot('pop3', id, { evict: () => session.evict() });
    raw.once('close', () => count.release());
    const deps: Pop3Deps = {
      config, tlsAvailable: !!tls && !spec.ssl, secured: spec.ssl || addr.proxiedSsl, trusted: addr.trusted, rip: addr.rip, lip, slot: count,
      startTls: tls ? () => serverStartTls(raw, () => tls.current()) : undefined,
      async login({ mech, authz, login, password, validClientCert }) {
        const rip = deps.rip; // XCLIENT may have named the real client
        const a = await auth.authenticate(login, password, { service: 'pop3', rip, lip, secured: deps.secured, loginUser: authz && authz !== login ? authz : undefined, session: session.loginSession, validClientCert });
        if (!(!a.ok && a.reason === CLIENT_CERT_REFUSED)) {
          // the auth reply routes the login elsewhere: a backend (`proxy`) or a referral (`nologin` + `host`)
          const route = session.route({ fields: a.fields, nologin: !a.ok, reason: a.ok ? undefined : a.reason, user: a.ok ? a.user : login }, password);
          if (route.kind !== 'local') { await session.goElsewhere(route, a.ok ? a.user : login, mech); return; }
        }
        if (!a.ok) { session.authFailed(a.reason === CLIENT_CERT_REFUSED ? '' : login, mech, !!a.temp, a.reason); return; }
        if (!await session.admit(a.user, mech)) return;
        const req: LoginRequest = { id: ++nextId, protocol: 'pop3', authRef: a.ref, user: a.user, password, mech, tag: '', rip, lip, secured: deps.secured, capabilityAsked: false, session: session.loginSession };
        const reply = await askMaster(req);
        if (reply.t === 'login-failed') { session.reply(`-ERR [SYS/TEMP] ${INTERNAL}\r\n`); return; }
        session.logHandedOff(a.user, mech, reply.mpid);
        proxy(session.detach(), reply.key, () => count.release());
      },
    };
    const session = new pop3Mod!.Pop3Session(socket, deps);
    session.start();
  };

  process.on('message', (m: ChildMessage, handle?: unknown) => {
    if (m.t === 'conn' && handle) accept(handle as Socket, m.spec, m.id);
    else if (m.t === 'evict') counted.get(`${m.proto}/${m.id}`)?.evict();
    else if (m.t === 'admitted') { verdicts.get(`${m.proto}/${m.id}`)?.(m.verdict); verdicts.delete(`${m.proto}/${m.id}`); }
    else if (m.t === 'login-go' || m.t === 'login-failed') pending.get(m.id)?.(m);
    else if (m.t === 'shutdown') process.exit(0);
    else if (m.t === 'retire') live.retire();
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => undefined); // Ctrl-C reaches the whole group: the master decides
  sendTo(process, { t: 'ready' });
}
