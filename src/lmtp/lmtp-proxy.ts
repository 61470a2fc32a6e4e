/**
 * The LMTP proxy of Dovecot 2.3's lmtp (`lmtp_proxy = yes`, lmtp-proxy.c):
 * at RCPT each recipient's user is looked up in the passdb without a
 * password (service lmtp); a reply with `proxy` (or `proxy_maybe` naming
 * another machine: src/auth/proxy-fields.ts) and `host` sends the recipient
 * to that backend over LMTP: `hostip`, `port` (default: the port the client
 * connected to), `proxy_timeout` (seconds, default 125), `destuser`/`user`
 * (the address becomes that user plus the detail). Not found, not proxied,
 * `proxy` without `host` ("proxy: host not given") or an invalid port: the
 * recipient is delivered locally. One connection per backend host/ip/port and
 * transaction: LHLO, XCLIENT (PROTO, SESSION `<trans>:P<n>`, TTL, PORT, ADDR,
 * those the backend lists, unless `proxy_not_trusted`), MAIL FROM with the
 * client's parameters, and each RCPT TO whose reply is the client's. At the
 * end of the message each connection gets DATA once, streamed from the spool
 * (the Received header, then the message with CRLF line ends and dot
 * stuffing) and its per-recipient replies are relayed in RCPT order:
 * `250 2.0.0 <session> Saved` for a success, the backend's reply for a
 * refusal, `451 4.4.0 Proxy failed (connect, session=…)` (or `connection
 * lost`, `bad reply`, `timed out`) when the backend could not be talked to.
 * Not done: `ssl`/`starttls` to the backend, `source_ip`, `protocol=smtp`,
 * the `forward_*` fields (XRCPTFORWARD), lmtp_proxy_rawlog_dir.
 */
import { connect, isIP, type Socket } from 'node:net';
import type { Fields } from '../auth/databases.js';
import { loginRoute } from '../auth/proxy-fields.js';
import { Logger } from '../log/logger.js';
import type { SpooledMessage } from './data-spool.js';

/** lmtp-proxy.c LMTP_PROXY_DEFAULT_TIMEOUT_MSECS. */
const DEFAULT_TIMEOUT_MS = 125_000;
/** lmtp-proxy.h LMTP_PROXY_DEFAULT_TTL. */
export const LMTP_PROXY_DEFAULT_TTL = 5;
/** lmtp-proxy.c LMTP_MAX_REPLY_SIZE: a longer reply is a bad reply. */
const MAX_REPLY = 4096;

export interface LmtpProxyTarget { host: string; ip: string | null; port: number; timeoutMs: number; notTrusted: boolean; destuser: string | null }

/** What the client connection knows about itself: proxy_maybe's "is this me", the loop check, XCLIENT's values. */
export interface ProxyClientInfo { lip: string; lport: number; rip: string; rport: number; selfIps: string[] }

/**
 * lmtp_proxy_rcpt_parse_fields: the passdb's fields say where `user` goes,
 * or null (deliver locally). `log` gets Dovecot's error for bad fields.
 */
export function lmtpProxyTarget(fields: Fields, user: string, c: ProxyClientInfo, log: (msg: string) => void): LmtpProxyTarget | null {
  const route = loginRoute(fields, false, undefined, { user, password: '', lip: c.lip, lport: c.lport, selfIps: c.selfIps, defaultPort: c.lport, defaultSslPort: c.lport });
  if (route.kind !== 'proxy') return null;
  const r = route.route;
  if (r.badHostip) { log(`proxy: Invalid hostip ${r.badHostip}`); return null; }
  if (r.badPort !== undefined) { log(`proxy: Invalid port number ${r.badPort}`); return null; }
  const timeout = fields.find(([k]) => k === 'proxy_timeout')?.[1];
  if (timeout !== undefined && !/^\d+$/.test(timeout)) { log(`proxy: Invalid proxy_timeout value ${timeout}`); return null; }
  if (!r.host) { log('proxy: host not given'); return null; }
  const named = fields.find(([k]) => k === 'destuser')?.[1] ?? fields.find(([k]) => k === 'user')?.[1];
  return { host: r.host, ip: r.ip, port: r.port, timeoutMs: timeout ? Number(timeout) * 1000 : DEFAULT_TIMEOUT_MS, notTrusted: r.notTrusted, destuser: named !== undefined && named !== user ? named : null };
}

/** lmtp_proxy_is_ourself: the backend is this very listener (same IP and port). */
export function proxiesToItself(t: LmtpProxyTarget, c: ProxyClientInfo): boolean {
  const plain = (ip: string) => ip.replace(/^::ffff:/, '');
  const ip = t.ip ?? (isIP(t.host) ? t.host : null);
  return t.port === c.lport && ip !== null && plain(ip) === plain(c.lip);
}

/** A backend's reply, or why there is none (lib-smtp's SMTP_CLIENT_COMMAND_ERROR_*, as lmtp-proxy.c names them). */
export type BackendReply = { code: number; enh: string | null; text: string } | { error: 'connect' | 'connection lost' | 'bad reply' | 'timed out' };

/**
 * The reply line the LMTP client gets for a backend's reply to RCPT
 * (`atRcpt`) or after the data (lmtp_proxy_rcpt_cb, lmtp_proxy_data_cb,
 * lmtp_proxy_handle_reply): no enhanced code gets `<class>.0.0` (2.1.0 for an
 * accepted RCPT), a success after the data is `<session> Saved`, and
 * smtp_server_recipient_reply_forward puts the client's address in (a leading
 * `<…>` replaced, else `<address> ` added, except to an accepted RCPT).
 */
export function relayedReply(r: BackendReply, sessionId: string, address: string, atRcpt: boolean): string {
  if ('error' in r) return `451 4.4.0 Proxy failed (${r.error}, session=${sessionId})`;
  const ok = r.code >= 200 && r.code < 300;
  const text = ok && !atRcpt ? `${sessionId} Saved` : r.text;
  const enh = r.enh ?? (ok ? (atRcpt ? '2.1.0' : '2.0.0') : `${Math.floor(r.code / 100)}.0.0`);
  const end = text.startsWith('<') ? text.indexOf('>') : -1;
  const withPath = end > 0 ? `<${address}>${text.slice(end + 1)}` : ok && atRcpt ? text : `<${address}> ${text}`;
  return `${r.code} ${enh} ${withPath}`;
}

/** smtp_reply_log: the reply as a log line shows it. */
export function replyLog(r: BackendReply): string {
  if ('error' in r) return `Proxy failed (${r.error})`;
  return `${r.code} ${r.enh ? `${r.enh} ` : ''}${r.text}`;
}

/** The message as the backend receives it after DATA: CRLF line ends, a leading dot doubled (RFC 5321 4.5.2). */
export async function* dotStuffed(src: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncIterable<Buffer> {
  let lineStart = true;
  let prev = -1;
  for await (const chunk of src) {
    const out: number[] = [];
    for (const b of chunk) {
      if (lineStart && b === 0x2e) out.push(0x2e);
      if (b === 0x0a && prev !== 0x0d) out.push(0x0d);
      out.push(b);
      lineStart = b === 0x0a;
      prev = b;
    }
    yield Buffer.from(out);
  }
  if (!lineStart) yield Buffer.from('\r\n');
}

export interface ProxyTransaction { sessionId: string; mailFrom: string; mailParams: string[]; helo: string; myHostname: string; client: ProxyClientInfo; ttl: number }

/**
 * One LMTP client connection to a backend for one transaction (Dovecot's
 * lmtp_proxy_connection): commands are sent one after the other, each
 * answered before the next; the first failure to talk to the backend
 * answers every later command with the same error.
 */
export class BackendConnection {
  private sock: Socket | null = null;
  private buf = '';
  private waiters: ((r: BackendReply) => void)[] = [];
  private broken: BackendReply | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private started: Promise<BackendReply>;
  /** The accepted recipients' addresses, in RCPT order: one reply each after the data. */
  readonly accepted: string[] = [];
  readonly startedAt = Date.now();

  constructor(readonly target: LmtpProxyTarget, private readonly tx: ProxyTransaction, seq: number) {
    this.started = this.start(`${tx.sessionId}:P${seq}`);
  }

  private fail(e: BackendReply & { error: string }): void {
    if (!this.broken) this.broken = e;
    for (const w of this.waiters.splice(0)) w(this.broken);
    this.sock?.destroy();
  }

  private async start(session: string): Promise<BackendReply> {
    const s = connect({ host: this.target.ip ?? this.target.host, port: this.target.port });
    this.sock = s;
    let connected = false;
    s.setTimeout(this.target.timeoutMs, () => this.fail({ error: connected ? 'timed out' : 'connect' }));
    s.on('connect', () => { connected = true; s.setNoDelay(true); });
    s.on('error', () => this.fail({ error: connected ? 'connection lost' : 'connect' }));
    s.on('close', () => this.fail({ error: connected ? 'connection lost' : 'connect' }));
    s.on('data', (d: Buffer) => this.onData(d));
    const greeting = await this.reply();
    if ('error' in greeting || greeting.code !== 220) return this.badStart(greeting);
    let caps = await this.command(`LHLO ${this.tx.myHostname}`);
    if ('error' in caps || caps.code !== 250) return this.badStart(caps);
    const xclient = this.capabilities.find((c) => /^XCLIENT( |$)/i.test(c));
    if (xclient && !this.target.notTrusted) {
      // smtp_client_connection_send_xclient: the fields the backend lists, in Dovecot's order
      const args = xclient.toUpperCase().split(' ').slice(1);
      const c = this.tx.client;
      const fields: [string, string][] = [['PROTO', 'LMTP'], ['SESSION', session], ['TTL', String(this.tx.ttl)], ['PORT', c.rport ? String(c.rport) : ''], ['ADDR', c.rip]];
      const line = fields.filter(([k, v]) => v && args.includes(k)).map(([k, v]) => `${k}=${xtext(v)}`).join(' ');
      if (line) {
        const r = await this.command(`XCLIENT ${line}`);
        if ('error' in r || r.code >= 400) return this.badStart(r);
        // the backend greets again and wants LHLO again
        caps = await this.command(`LHLO ${this.tx.myHostname}`);
        if ('error' in caps || caps.code !== 250) return this.badStart(caps);
      }
    }
    return this.command(`MAIL FROM:<${this.tx.mailFrom}>${this.tx.mailParams.map((p) => ` ${p}`).join('')}`);
  }

  private badStart(r: BackendReply): BackendReply {
    // a greeting or LHLO refusal is the connection failing (lib-smtp: SMTP_CLIENT_COMMAND_ERROR_CONNECT_FAILED)
    if (!('error' in r)) this.fail({ error: 'connect' });
    return this.broken ?? r;
  }

  private capabilities: string[] = [];
  private lines: string[] = [];

  private onData(d: Buffer): void {
    this.buf += d.toString('latin1');
    for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, i).replace(/\r$/, '');
      this.buf = this.buf.slice(i + 1);
      const m = /^(\d{3})([ -])(.*)$/.exec(line);
      if (!m || (this.lines.length && !this.lines[0].startsWith(m[1]))) { this.fail({ error: 'bad reply' }); return; }
      this.lines.push(line);
      if (m[2] === '-') continue;
      const lines = this.lines;
      this.lines = [];
      this.capabilities = lines.slice(1).map((l) => l.slice(4));
      const text = lines.map((l) => l.slice(4)).join(' ');
      const enh = /^([245]\.\d{1,3}\.\d{1,3}) (.*)$/.exec(text);
      this.waiters.shift()?.({ code: Number(m[1]), enh: enh ? enh[1] : null, text: enh ? enh[2] : text });
    }
    if (this.buf.length > MAX_REPLY) this.fail({ error: 'bad reply' });
  }

  private reply(): Promise<BackendReply> {
    if (this.broken) return Promise.resolve(this.broken);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private command(line: string): Promise<BackendReply> {
    if (this.broken) return Promise.resolve(this.broken);
    const r = this.reply();
    this.sock!.write(`${line}\r\n`);
    return r;
  }

  /** Runs `f` after every command queued before it. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.queue.then(f);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** RCPT TO for one recipient: the backend's reply (MAIL's when MAIL was refused). */
  rcpt(address: string): Promise<BackendReply> {
    return this.serial(async () => {
      const mail = await this.started;
      if ('error' in mail || mail.code >= 300) return mail;
      const r = await this.command(`RCPT TO:<${address}>`);
      if (!('error' in r) && r.code >= 200 && r.code < 300) this.accepted.push(address);
      return r;
    });
  }

  /** DATA once: the header block then the message, streamed; one reply per accepted recipient, in order. */
  data(header: Buffer, message: SpooledMessage): Promise<BackendReply[]> {
    return this.serial(async () => {
      const n = this.accepted.length;
      const all = (r: BackendReply) => Array.from({ length: n }, () => r);
      const go = await this.command('DATA');
      if ('error' in go || go.code !== 354) return all(go);
      const replies = Array.from({ length: n }, () => this.reply());
      const s = this.sock!;
      const write = async (b: Buffer) => {
        if (this.broken || s.write(b)) return;
        await new Promise<void>((r) => { const done = () => { s.off('drain', done); s.off('close', done); r(); }; s.on('drain', done); s.on('close', done); });
      };
      try {
        for await (const b of dotStuffed([header])) await write(b);
        for await (const b of dotStuffed(message.stream())) { if (this.broken) break; await write(b); }
      } catch (e) {
        // the spool could not be read back: the backend must not take a cut message (no final dot)
        new Logger(`lmtp(${process.pid})`).error(`proxy: reading the message failed: ${(e as Error).message}`);
        this.fail({ error: 'connection lost' });
      }
      await write(Buffer.from('.\r\n'));
      return Promise.all(replies);
    }).catch(() => Array.from({ length: this.accepted.length }, () => this.broken ?? { error: 'connection lost' as const }));
  }

  /** The transaction is over: QUIT, and the socket closed whatever the backend does. */
  close(): void {
    void this.serial(async () => {
      if (this.broken || !this.sock) return;
      const s = this.sock;
      s.setTimeout(5000, () => s.destroy());
      await this.command('QUIT');
      s.destroy();
    });
  }
}

/** RFC 3461 xtext, as smtp_xtext_encode writes XCLIENT values. */
function xtext(v: string): string {
  let out = '';
  for (const ch of Buffer.from(v, 'utf8')) out += ch < 33 || ch > 126 || ch === 0x2b || ch === 0x3d ? `+${ch.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(ch);
  return out;
}

/** The log line after DATA (lmtp_proxy_data_cb). */
export function logDataReply(user: string, sessionId: string, address: string, conn: BackendConnection, r: BackendReply, index: number, count: number): void {
  const ok = !('error' in r) && r.code >= 200 && r.code < 300;
  const msg = `<${sessionId}>: ${ok ? 'Sent message to' : 'Failed to send message to'} <${address}> at ${conn.target.host}:${conn.target.port}: ${replyLog(r)} (${index}/${count} at ${Date.now() - conn.startedAt} ms)`;
  const log = Logger.forUser('lmtp', user);
  if (ok || !('error' in r)) log.info(msg); else log.error(msg);
}
