/**
 * An imap-login (and managesieve-login) process (Dovecot's login-common + imap-login), running as
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
 */
import { connect, type Socket } from 'node:net';
import { TLSSocket, createSecureContext } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import type { ImapLogin, LoginResult } from '../imap/login.js';
import type { RequestInfo } from '../auth/engine.js';
import { Session } from '../imap/session.js';
import type { ListenerSpec, TlsMaterial } from './listeners.js';
import { serverStartTls } from './starttls.js';
import { AuthClient } from './auth-client.js';
import { ManageSieveSession, type SessionDeps } from '../managesieve/session.js';
import { sendTo, type ChildMessage, type LoginRequest } from './process-model.js';
import { Liveness } from './retire.js';

const log = new Logger('imap-login');
const INTERNAL = 'Internal error occurred. Refer to server log for more information.';

export function runLoginProcess(config: DovecotConfig, tls: TlsMaterial | null, sockets: { login: string; auth: string }): void {
  const auth = new AuthClient(sockets.auth);
  const pending = new Map<number, (m: Extract<ChildMessage, { t: 'login-go' | 'login-failed' }>) => void>();
  let nextId = 0;
  const sessions = new Set<Session>();
  const live = new Liveness(); // client connections, pre-login and proxied: a retired process exits after the last

  const accept = (raw: Socket, spec: ListenerSpec) => {
    raw.setNoDelay(true);
    raw.on('error', () => raw.destroy());
    live.track(raw);
    const rip = (raw.remoteAddress ?? '').replace(/^::ffff:/, '');
    const lip = (raw.localAddress ?? '').replace(/^::ffff:/, '');
    let socket: Socket | TLSSocket = raw;
    if (spec.ssl && tls) {
      socket = new TLSSocket(raw, { isServer: true, secureContext: createSecureContext({ cert: tls.cert, key: tls.key, passphrase: tls.passphrase, minVersion: tls.minVersion }) });
      socket.on('error', () => socket.destroy());
    }
    if (spec.service === 'managesieve-login') { acceptSieve(socket, raw, spec, rip, lip); return; }
    let session: Session;
    const login: ImapLogin = {
      log,
      async login(user: string, password: string, info: RequestInfo): Promise<LoginResult> {
        const a = await auth.authenticate(user, password, { service: 'imap', rip, lip, secured: session.secured, loginUser: info.loginUser });
        if (!a.ok) {
          if (a.temp) return { ok: false, code: 'UNAVAILABLE', text: 'Temporary authentication failure.' };
          log.info(`Disconnected: Aborted login (auth failed, 1 attempts): user=<${user}>, method=${info.mech ?? 'PLAIN'}, rip=${rip}, lip=${lip}`);
          return { ok: false, code: 'AUTHENTICATIONFAILED', text: a.reason ?? 'Authentication failed.' };
        }
        return { ok: false, handOff: (tag) => handOff(session, { id: ++nextId, protocol: 'imap', authRef: a.ref, user: a.user, password, mech: info.mech ?? 'PLAIN', tag, rip, lip, secured: session.secured, capabilityAsked: session.capabilityAskedBeforeLogin }) };
      },
    };
    const starttls = tls && !spec.ssl ? (d: Duplex) => serverStartTls(d, tls) : undefined;
    session = new Session(socket, { config, log: new Logger(`imap-login(${rip})`), login, rip, lip, secured: spec.ssl, starttls });
    sessions.add(session);
    socket.once('close', () => sessions.delete(session));
    void session.start().catch(() => socket.destroy());
  };

  /** After the auth process said OK: the master picks the mail process; the reply says go (with the key) or why not. */
  const askMaster = (req: LoginRequest) => new Promise<Extract<ChildMessage, { t: 'login-go' | 'login-failed' }>>((resolve) => {
    pending.set(req.id, (m) => { pending.delete(req.id); resolve(m); });
    sendTo(process, { t: 'login', req });
  });

  /** From now on the session lives in the mail process: copy bytes both ways through the master's login socket. */
  const proxy = (client: Duplex, key: string) => {
    const upstream = connect(sockets.login);
    upstream.on('error', () => { upstream.destroy(); client.destroy(); });
    client.on('error', () => upstream.destroy());
    upstream.write(`${key}\n`);
    // the mail process speaks first (its login reply): only then is anything of the client's passed on
    upstream.once('data', (first: Buffer) => {
      client.write(first);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  };

  const who = (req: LoginRequest) => `user=<${req.user}>, method=${req.mech}, rip=${req.rip}, lip=${req.lip}${req.secured ? ', TLS' : ''}`;

  const handOff = async (session: Session, req: LoginRequest): Promise<void> => {
    const reply = await askMaster(req);
    if (reply.t === 'login-failed') {
      if (reply.reason === 'init') {
        await session.send({ kind: 'tagged', tag: req.tag, status: 'OK', text: 'Logged in, but initialization failed.' });
        await session.bye(INTERNAL);
      } else {
        log.info(`Disconnected: Internal login failure: ${who(req)}`);
        await session.send({ kind: 'tagged', tag: req.tag, status: 'NO', code: { name: 'UNAVAILABLE' }, text: INTERNAL });
      }
      return;
    }
    proxy(session.detach(), reply.key);
    log.info(`Login: ${who(req)}`);
  };

  /** A ManageSieve connection (managesieve-login): the same steps, Pigeonhole's texts. */
  const acceptSieve = (socket: Socket | TLSSocket, raw: Socket, spec: ListenerSpec, rip: string, lip: string) => {
    const slog = new Logger('managesieve-login');
    const deps: SessionDeps = {
      config, resolveHome: () => undefined, tlsAvailable: !!tls && !spec.ssl, secured: spec.ssl, remoteIp: rip, localIp: lip,
      startTls: tls ? () => serverStartTls(raw, tls) : undefined,
      async login({ mech, authz, login, password }) {
        const a = await auth.authenticate(login, password, { service: 'sieve', rip, lip, secured: deps.secured, loginUser: authz && authz !== login ? authz : undefined });
        if (!a.ok) {
          session.reply(a.temp ? 'NO (TRYLATER) "Temporary authentication failure."\r\n' : 'NO "Authentication failed."\r\n');
          if (!a.temp) slog.info(`Disconnected: auth failed (user=<${login}>, method=${mech}, rip=${rip})`);
          return;
        }
        const req: LoginRequest = { id: ++nextId, protocol: 'sieve', authRef: a.ref, user: a.user, password, mech, tag: '', rip, lip, secured: deps.secured, capabilityAsked: false };
        const reply = await askMaster(req);
        if (reply.t === 'login-failed') { session.reply(`NO "${INTERNAL}"\r\n`); return; }
        proxy(session.detach(), reply.key);
        slog.info(`Login: user=<${a.user}>, method=${mech}, rip=${rip}`);
      },
    };
    const session = new ManageSieveSession(socket, deps);
    session.start();
  };

  process.on('message', (m: ChildMessage, handle?: unknown) => {
    if (m.t === 'conn' && handle) accept(handle as Socket, m.spec);
    else if (m.t === 'login-go' || m.t === 'login-failed') pending.get(m.id)?.(m);
    else if (m.t === 'shutdown') process.exit(0);
    else if (m.t === 'retire') live.retire();
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => undefined); // Ctrl-C reaches the whole group: the master decides
  sendTo(process, { t: 'ready' });
}
