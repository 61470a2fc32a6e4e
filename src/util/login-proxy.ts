/**
 * The protocol-independent half of Dovecot 2.3's login proxy
 * (login-common/login-proxy.c): connect to the backend within the
 * proxy's timeout (`proxy_timeout`, else login_proxy_timeout), retrying a
 * failed connect after 1 s up to login_proxy_max_reconnects times while
 * more than 1.1 s of the timeout is left; TLS at once for `ssl=yes` or after
 * the protocol's STARTTLS (`any-cert` skips the certificate check); the
 * backend's pre-login lines read one at a time, at most 4096 bytes each
 * ("Too long input line"); the failure kinds with their log prefixes; and,
 * after the login, bytes relayed both ways with backpressure until one side
 * goes, logged as `Disconnected by server|client (Ns idle, in=…, out=…)`.
 * login_proxy_max_disconnect_delay spreads the clients of a backend that
 * went away over that many seconds, as Dovecot does.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';

export const LOGIN_PROXY_FAILURE_MSG = 'Account is temporarily unavailable.';
/** login-proxy.h LOGIN_PROXY_TTL: hops a login may still take. */
export const LOGIN_PROXY_TTL = 5;
const MAX_PROXY_INPUT_SIZE = 4096;
export const PROXY_CONNECT_RETRY_MSECS = 1000;
export const PROXY_CONNECT_RETRY_MIN_MSECS = PROXY_CONNECT_RETRY_MSECS + 100;

/** enum login_proxy_failure_type. */
export type ProxyFailureType = 'connect' | 'internal' | 'internal-config' | 'remote' | 'remote-config' | 'protocol' | 'auth' | 'auth-tempfail';

/** login_proxy_failed's log prefix per failure kind. */
export function failurePrefix(type: ProxyFailureType): string {
  switch (type) {
    case 'internal': return 'Aborting due to internal error: ';
    case 'remote': case 'remote-config': return 'Aborting due to remote server: ';
    case 'protocol': return 'Remote server sent invalid input: ';
    default: return '';
  }
}

export class ProxyFailure extends Error {
  constructor(readonly type: ProxyFailureType, readonly reason: string) { super(reason); }
}

export interface BackendTarget {
  ip: string;
  port: number;
  host: string;
  ssl: boolean;
  starttls: boolean;
  anyCert: boolean;
  timeoutMs: number;
}

/**
 * A connection to the backend during the login: lines in, bytes out.
 * `started`: when the proxying began (the log lines' seconds).
 */
export class BackendConnection {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: ((line: string | null) => void) | null = null;
  private failWaiter: ((e: unknown) => void) | null = null;
  private ended = false;
  private endReason = '';
  private deadline: NodeJS.Timeout | null = null;
  private onTimeout: (() => void) | null = null;
  readonly started = Date.now();

  private constructor(public socket: Socket | TLSSocket, private readonly target: BackendTarget) {
    this.attach(socket);
  }

  private attach(socket: Socket | TLSSocket): void {
    this.socket = socket;
    socket.on('data', (d: Buffer) => { this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d; this.wake(); });
    socket.on('end', () => { this.ended = true; this.wake(); });
    socket.on('close', () => { this.ended = true; this.wake(); });
    socket.on('error', (e) => { this.endReason ||= e.message; this.ended = true; this.wake(); });
  }

  private wake(): void {
    if (!this.waiter) return;
    const w = this.waiter;
    let line: string | null | undefined;
    try { line = this.takeLine(); } catch (e) { this.waiter = null; this.failWaiter?.(e); return; }
    if (line !== undefined) { this.waiter = null; w(line); }
  }

  /** undefined: nothing complete yet. null: the backend went away. Throws on a too long line. */
  private takeLine(): string | null | undefined {
    const nl = this.buf.indexOf(10);
    if (nl < 0) {
      if (this.buf.length >= MAX_PROXY_INPUT_SIZE) throw new ProxyFailure('protocol', 'Too long input line');
      return this.ended ? null : undefined;
    }
    if (nl > MAX_PROXY_INPUT_SIZE) throw new ProxyFailure('protocol', 'Too long input line');
    let line = this.buf.subarray(0, nl).toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    this.buf = this.buf.subarray(nl + 1);
    return line;
  }

  /** The next line from the backend; null when it disconnected. */
  readLine(): Promise<string | null> {
    let line: string | null | undefined;
    try { line = this.takeLine(); } catch (e) { return Promise.reject(e); }
    if (line !== undefined) return Promise.resolve(line);
    // one waiter at a time; a too long line rejects it as more data comes (wake)
    return new Promise((resolve, reject) => {
      this.waiter = (l) => resolve(l);
      this.failWaiter = reject;
    });
  }

  /** Why the backend went away, as io_stream_get_disconnect_reason says it. */
  get disconnectReason(): string { return this.endReason || 'Connection closed'; }

  /** Bytes written to the backend so far. */
  bytesWritten = 0;

  write(text: string): void { this.bytesWritten += Buffer.byteLength(text); this.socket.write(text); }

  /** Fail the login with `onTimeout` once `ms` from the start have passed (login_proxy_timeout covers the whole login). */
  armTimeout(onTimeout: () => void): void {
    this.onTimeout = onTimeout;
    const left = this.target.timeoutMs - (Date.now() - this.started);
    this.deadline = setTimeout(() => this.onTimeout?.(), Math.max(0, left));
    this.deadline.unref?.();
  }

  disarm(): void { if (this.deadline) clearTimeout(this.deadline); this.deadline = null; this.onTimeout = null; }

  /** STARTTLS accepted by the backend: TLS on the same connection. */
  async startTls(): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners('data'); raw.removeAllListeners('end'); raw.removeAllListeners('close'); raw.removeAllListeners('error');
    raw.on('error', () => undefined);
    const tls = await tlsHandshake(raw, this.target);
    this.buf = Buffer.alloc(0);
    this.attach(tls);
  }

  /** Local address of the connection to the backend (the log's local=…). */
  get local(): string { return `${this.socket.localAddress?.replace(/^::ffff:/, '') ?? ''}:${this.socket.localPort ?? ''}`; }

  /** Whatever the backend sent after the last line read (it belongs to the client now). */
  takeRest(): Buffer { const b = this.buf; this.buf = Buffer.alloc(0); return b; }

  destroy(): void { this.disarm(); this.socket.destroy(); }

  /** One connect (and TLS for `ssl=yes`); ProxyFailure ('connect') with Dovecot's text when it fails. The caller retries. */
  static async open(target: BackendTarget): Promise<BackendConnection> {
    const started = Date.now();
    try {
      let sock: Socket | TLSSocket = await connectTcp(target.ip, target.port, target.timeoutMs);
      if (target.ssl && !target.starttls) sock = await tlsHandshake(sock, target);
      return new BackendConnection(sock, target);
    } catch (e) {
      if (e instanceof ProxyFailure) throw e;
      const secs = Math.floor((Date.now() - started) / 1000);
      const err = e as NodeJS.ErrnoException & { local?: string };
      throw new ProxyFailure('connect', `connect(${target.ip}, ${target.port}) failed: ${errnoText(err)} (after ${secs} secs${err.local ? `, local=${err.local}` : ''})`);
    }
  }
}

/** strerror's words for the errors a connect meets. */
function errnoText(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ECONNREFUSED': return 'Connection refused';
    case 'ETIMEDOUT': return 'Connection timed out';
    case 'EHOSTUNREACH': return 'No route to host';
    case 'ENETUNREACH': return 'Network is unreachable';
    case 'ECONNRESET': return 'Connection reset by peer';
    default: return e.message;
  }
}

/**
 * A TCP connection to the backend. A failed one carries `local`: the
 * address the attempt was made from (the log's `local=…`), read once the
 * connect call has bound the socket, as Dovecot's net_getsockname does.
 */
function connectTcp(ip: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: ip, port });
    let local = '';
    s.once('connectionAttempt', () => process.nextTick(() => {
      const name: { address?: string; port?: number } = {};
      (s as unknown as { _handle?: { getsockname?(o: object): void } })._handle?.getsockname?.(name);
      if (name.address) local = `${name.address.replace(/^::ffff:/, '')}:${name.port}`;
    }));
    const fail = (e: NodeJS.ErrnoException) => { s.destroy(); reject(Object.assign(e, { local })); };
    const timer = setTimeout(() => fail(Object.assign(new Error('Connection timed out'), { code: 'ETIMEDOUT' })), Math.max(1, timeoutMs));
    s.once('connect', () => { clearTimeout(timer); s.removeAllListeners('error'); s.setNoDelay(true); resolve(s); });
    s.once('error', (e) => { clearTimeout(timer); fail(e); });
  });
}

function tlsHandshake(raw: Socket, target: BackendTarget): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    // the certificate must name `host` (an IP host: its IP), as Dovecot's ssl_iostream_check_cert_validity
    const s = tlsConnect({ socket: raw, host: target.host, servername: isIpText(target.host) ? undefined : target.host, rejectUnauthorized: !target.anyCert });
    s.once('secureConnect', () => { s.removeAllListeners('error'); resolve(s); });
    s.once('error', (e) => { s.destroy(); reject(new ProxyFailure('remote', `Failed to start SSL/TLS: ${e.message}`)); });
  });
}

const isIpText = (h: string) => /^[\d.]+$/.test(h) || h.includes(':');

/** Per backend: sessions being proxied and recent disconnects (login_proxy_record, for the disconnect delay). */
interface BackendRecord { proxying: number; disconnects: number; since: number; delayed: number }
const records = new Map<string, BackendRecord>();
const PROXY_DISCONNECT_INTERVAL_MSECS = 100;

function recordFor(key: string): BackendRecord {
  let r = records.get(key);
  if (!r) { r = { proxying: 0, disconnects: 0, since: 0, delayed: 0 }; records.set(key, r); }
  return r;
}

/**
 * login_proxy_delay_disconnect: with max_delay seconds, the clients of a
 * backend that disconnected them go at most (connections / max_delay) per
 * second, in 100 ms steps; the first second's worth goes at once.
 */
function disconnectDelayMs(rec: BackendRecord, maxDelaySecs: number): number {
  const now = Date.now();
  if (rec.disconnects === 0 || now - rec.since > maxDelaySecs * 1000 + 1000) { rec.since = now + Math.floor(Math.random() * PROXY_DISCONNECT_INTERVAL_MSECS); rec.disconnects = 0; rec.delayed = 0; }
  rec.disconnects++;
  if (maxDelaySecs === 0) return 0;
  const maxConns = rec.proxying + rec.disconnects;
  const perSec = Math.ceil(maxConns / maxDelaySecs);
  if (rec.disconnects <= perSec && rec.delayed === 0) return 0;
  const offset = PROXY_DISCONNECT_INTERVAL_MSECS * Math.floor(maxDelaySecs * rec.disconnects * (1000 / PROXY_DISCONNECT_INTERVAL_MSECS) / maxConns);
  const delay = rec.since + offset - now;
  if (delay <= 0) return 0;
  rec.delayed++;
  return delay;
}

export interface RelayOptions {
  /** bytes already sent to the backend and to the client before the relay (the log line counts the whole connection) */
  sentToBackend: number;
  sentToClient: number;
  /** login_proxy_max_disconnect_delay in seconds */
  maxDisconnectDelaySecs: number;
  /** the proxy's log line when either side went (`Disconnected by …`) */
  log: (line: string) => void;
  /** the client connection left (release its slot) */
  done: () => void;
}

/**
 * After the backend's OK: bytes both ways (pipe: a slow reader stops the
 * other side), `clientInput` (what the client pipelined after its login)
 * and `backendRest` (what the backend sent after its OK) first.
 */
export function relay(client: Duplex, clientInput: Buffer, backend: BackendConnection, backendRest: Buffer, opts: RelayOptions): void {
  const server = backend.socket;
  backend.disarm();
  server.removeAllListeners('data'); server.removeAllListeners('end'); server.removeAllListeners('close'); server.removeAllListeners('error');
  const key = `${server.remoteAddress}:${server.remotePort}`;
  const rec = recordFor(key);
  rec.proxying++;
  let inBytes = opts.sentToBackend; // to the server
  let outBytes = opts.sentToClient; // to the client
  let last = Date.now();
  let finished = false;
  const finish = (side: 'server' | 'client', err: string) => {
    if (finished) return;
    finished = true;
    rec.proxying--;
    const idle = Math.floor((Date.now() - last) / 1000);
    opts.log(`Disconnected by ${side}${err ? `: ${err}` : ''} (${idle}s idle, in=${inBytes}, out=${outBytes})`);
    server.destroy();
    const delay = side === 'server' ? disconnectDelayMs(rec, opts.maxDisconnectDelaySecs) : 0;
    if (delay > 0) setTimeout(() => client.destroy(), delay).unref?.();
    else client.destroy();
  };
  client.on('data', (d: Buffer) => { inBytes += d.length; last = Date.now(); });
  server.on('data', (d: Buffer) => { outBytes += d.length; last = Date.now(); });
  server.on('error', (e) => finish('server', e.message));
  client.on('error', (e) => finish('client', e.message));
  server.on('close', () => finish('server', ''));
  client.on('close', () => { finish('client', ''); opts.done(); });
  if (backendRest.length) { outBytes += backendRest.length; client.write(backendRest); }
  if (clientInput.length) { inBytes += clientInput.length; server.write(clientInput); }
  server.pipe(client);
  client.pipe(server);
  client.resume();
}

/** What a protocol's proxied login (pop3/login-proxy.ts …) gives the shared connect/retry/relay loop. */
export interface ProxyLoginDriver<S extends { toString(): string }> {
  route: { host: string; ip: string | null; port: number; destuser: string; master?: string; ssl: boolean; starttls: boolean; anyCert: boolean; timeoutMs: number };
  user: string;
  config: { get(k: string): string; getTime(k: string): number };
  /** the proxy's log line (the protocol adds `proxy(user,ip:port): ` and login_log_format) */
  log(level: 'info' | 'error', msg: string): void;
  /** the client went away meanwhile (no reconnect) */
  isClosed(): boolean;
  /** a fresh per-attempt dialogue state (its toString: the log's state=…) */
  newState(): S;
  /** the pre-login dialogue: the line for the client on the backend's OK, null when the backend refused (answered) */
  dialogue(b: BackendConnection, state: S, started: number): Promise<string | null>;
  /** the login failed for good: the log's bookkeeping and the client's reply */
  failed(type: ProxyFailureType, reason: string): Promise<void>;
  /** the backend said OK: its line to the client, then the byte relay (the client connection taken over) */
  proxying(okLine: string, b: BackendConnection): Promise<void>;
}

/**
 * login_proxy_new + the protocol's parse loop: connect (retried after 1 s
 * as login_proxy_max_reconnects allows while time is left), the dialogue
 * under login_proxy_timeout, `Started proxying to <ip> …` and the relay;
 * failures logged with Dovecot's prefixes (`Login failed: …` only with
 * auth_verbose) and answered by the protocol.
 */
export async function runProxyLogin<S extends { toString(): string }>(d: ProxyLoginDriver<S>): Promise<void> {
  const route = d.route;
  const timeoutMs = route.timeoutMs || d.config.getTime('login_proxy_timeout') || 30_000;
  const maxReconnects = Number(d.config.get('login_proxy_max_reconnects') || '3');
  const started = Date.now();
  let reconnects = 0;
  for (;;) {
    let backend: BackendConnection | null = null;
    const state = d.newState();
    try {
      const left = timeoutMs - (Date.now() - started);
      backend = await BackendConnection.open({ ip: route.ip!, port: route.port, host: route.host, ssl: route.ssl, starttls: route.starttls, anyCert: route.anyCert, timeoutMs: left });
      const b = backend;
      const timedOut = new Promise<never>((_r, reject) => b.armTimeout(() => reject(new ProxyFailure('connect', `Login timed out in state=${state} (after ${Math.floor((Date.now() - started) / 1000)} secs${reconnects ? `, ${reconnects} reconnects` : ''}, local=${b.local})`))));
      timedOut.catch(() => undefined);
      const ok = await Promise.race([d.dialogue(b, state, started), timedOut]);
      b.disarm();
      if (ok === null) { b.destroy(); return; }
      const msecs = Date.now() - started;
      let info = `Started proxying to <${route.ip}>`;
      if (route.ip !== route.host) info += ` (<${route.host}>)`;
      info += connInfo(route, d.user);
      info += ` (${Math.floor(msecs / 1000)}.${String(msecs % 1000).padStart(3, '0')} secs${reconnects ? `, ${reconnects} reconnects` : ''})`;
      d.log('info', info);
      await d.proxying(ok, b);
      return;
    } catch (e) {
      backend?.destroy();
      if (!(e instanceof ProxyFailure)) throw e;
      const retryable = e.type === 'connect' || e.type === 'remote' || e.type === 'protocol' || e.type === 'auth-tempfail';
      const left = timeoutMs - (Date.now() - started);
      if (retryable && reconnects < maxReconnects && left > PROXY_CONNECT_RETRY_MIN_MSECS && !d.isClosed()) {
        reconnects++;
        await new Promise((r) => setTimeout(r, PROXY_CONNECT_RETRY_MSECS));
        continue;
      }
      // proxy_connect_error_append: the seconds since the first attempt and the reconnects so far
      const reason = e.reason.startsWith('connect(') ? e.reason.replace(/ \(after \d+ secs/, ` (after ${Math.floor((Date.now() - started) / 1000)} secs${reconnects ? `, ${reconnects} reconnects` : ''}`) : e.reason;
      if (e.type === 'auth' || e.type === 'auth-tempfail') {
        if (d.config.get('auth_verbose') === 'yes') d.log('info', `Login failed${connInfo(route, d.user)}: ${reason}`);
      } else d.log('error', failurePrefix(e.type) + reason);
      await d.failed(e.type, reason);
      return;
    }
  }
}

/** client_proxy_append_conn_info: ` as user <destuser>` when it differs, ` (master <m>)`. */
function connInfo(route: { destuser: string; master?: string }, user: string): string {
  return (route.destuser !== user ? ` as user ${route.destuser}` : '') + (route.master ? ` (master ${route.master})` : '');
}

/**
 * The refusals found before connecting (proxy_check_start, login_proxy_is_ourself,
 * login_proxy_connect's TTL check); null when the login may go on.
 */
export function proxyStartRefusal(route: { host: string; ip: string | null; badHostip?: string; port: number; destuser: string }, here: { lip: string; lport: number; user: string; ttl: number }): ProxyFailure | null {
  if (!route.host) return new ProxyFailure('internal', 'host not given');
  if (route.badHostip) return new ProxyFailure('internal', `Invalid hostip ${route.badHostip}`);
  if (!route.ip) return new ProxyFailure('internal', `BUG: host ${route.host} is not an IP (auth should have changed it)`);
  if (route.port === here.lport && route.ip.replace(/^::ffff:/, '') === here.lip.replace(/^::ffff:/, '') && route.destuser === here.user) return new ProxyFailure('internal', 'Proxying loops to itself');
  if (here.ttl <= 1) return new ProxyFailure('remote-config', 'TTL reached zero - proxies appear to be looping?');
  return null;
}

/** str_sanitize(line, 160): control characters as '?', cut with "...". */
export function sanitizeLine(line: string): string {
  const clean = line.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > 160 ? `${clean.slice(0, 157)}...` : clean;
}
