/**
 * One LMTP connection (RFC 2033, RFC 3030 CHUNKING) with the replies of
 * Dovecot 2.3's lib-smtp server, checked by test/lmtp/lmtp-diff.test.ts:
 * greeting, LHLO capabilities, MAIL/RCPT path and parameter errors,
 * DATA with dot-unstuffing (CRLF or bare LF), BDAT chunks, one reply per
 * recipient (250 only once the message is on disk; a repeated address shares
 * the first one's delivery), session ids `<id>[:T<n>][:R<k>]`, the 32-byte
 * verb and 4096-byte parameter limits, and the bad-command limit (10).
 * Pipelined commands are handled in order. Delivery is src/lmtp/delivery.ts.
 *
 * Resources as Dovecot's lmtp bounds them: the message is spooled as it
 * arrives (src/lmtp/data-spool.ts: memory up to 128 kB, then an encrypted,
 * already unlinked file under mail_temp_dir), never gathered in memory, and
 * the socket is not read while the spool's writes are behind; no message
 * size limit (lmtp sets lib-smtp's max_message_size to unlimited; Dovecot's
 * only cap is quota's, at save). The client idle timeout is lmtp's
 * CLIENT_IDLE_TIMEOUT_MSECS (5 minutes without input while a command or
 * message data is awaited, not while a delivery runs): `421 4.4.2 <host>
 * Disconnected for inactivity`. Test hook: SEALMAIL_TEST_LMTP_IDLE_MS
 * replaces the 5 minutes (tests only). `lmtp_user_concurrency_limit` is
 * checked at RCPT (src/lmtp/user-concurrency.ts: the master's count over
 * every LMTP process, `slots`).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type { AuthEngine } from '../auth/engine.js';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import { CrlfDecoder, DotDecoder } from './data-decoder.js';
import { MessageSpool, type SpooledMessage } from './data-spool.js';
import { checkRecipient, deliver, received, overQuotaAlready, type DeliveryInput, type DeliveryResult, type OverQuotaCheck } from './delivery.js';
import { faultText, guarded } from '../util/fault.js';
import { localSlots, takeUserSlot, type UserSlot, type UserSlotTaker } from './user-concurrency.js';
import { statsEvent } from '../util/stats-events.js';
import { quickAck } from '../util/tcp-socket.js';
import { splitDetail } from '../auth/recipient.js';
import { BackendConnection, LMTP_PROXY_DEFAULT_TTL, lmtpProxyTarget, logDataReply, proxiesToItself, relayedReply, type BackendReply, type ProxyClientInfo } from './lmtp-proxy.js';

const MAX_BAD = 10;
const MAX_VERB = 32;
const MAX_PARAMS = 4096;
/** lmtp-client.c CLIENT_IDLE_TIMEOUT_MSECS. */
const IDLE_MS = 5 * 60 * 1000;
/** Unprocessed input (pipelined commands, message data not yet spooled) above which the socket is not read. */
const INPUT_HIGH_WATER = 1024 * 1024;
/** Spooled bytes not yet on disk above which DATA/BDAT reading waits for the disk. */
const SPOOL_HIGH_WATER = 1024 * 1024;
/** uoff_t: a BDAT size beyond it does not parse in lib-smtp. */
const UOFF_MAX = (1n << 64n) - 1n;

/** RFC 5321 `String`: an Atom or a Quoted-string (VRFY's and NOOP's argument). */
const SMTP_STRING = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+|"(?:[^"\\\r\n]|\\.)*")$/;

/** `proxy`: the backend this recipient was accepted by (lmtp_proxy), with the address it was given there. */
interface Rcpt { address: string; user: string; detail: string; index: number; slot: UserSlot; proxy?: { conn: BackendConnection; address: string } }

/** A proxied recipient holds no local delivery slot. */
const NO_SLOT: UserSlot = { release: () => undefined };

/** A BDAT chunk being read off the wire: `accept` when its bytes go to the spool (else they are read and dropped). */
interface Chunk { size: number; left: number; last: boolean; bad: boolean; accept: boolean }

export class LmtpSession {
  private buf: Buffer = Buffer.alloc(0);
  private running = false;
  private helo = '';
  private from: string | null = null;
  /** MAIL FROM's parameters, passed on to the proxy's backends. */
  private mailParams: string[] = [];
  /** lmtp_proxy: the transaction's backend connections, one per host/ip/port. */
  private backends = new Map<string, BackendConnection>();
  private rcpts: Rcpt[] = [];
  private rcptCount = 0;
  private transactions = 0;
  /** The transaction's message so far (DATA, or the BDAT chunks); null before DATA/BDAT. */
  private spool: MessageSpool | null = null;
  /** DATA's decoder while in DATA. */
  private dot: DotDecoder | null = null;
  /** BDAT's decoder once a chunk was accepted; its spool is `spool`. */
  private crlf: CrlfDecoder | null = null;
  private chunkFailed = false;
  /** The BDAT chunk being read off the wire. */
  private chunk: Chunk | null = null;
  /** Skipping the rest of a too-long line. */
  private skipping = false;
  private bad = 0;
  private closed = false;
  private readonly id = randomBytes(16).toString('base64').slice(0, 22);
  private readonly host: string;
  private readonly log = new Logger(`lmtp(${process.pid})`);
  private disconnectLogged = false;
  private idle: NodeJS.Timeout | null = null;
  private readonly idleMs: number;

  /**
   * `deliverer`: where a recipient's copy is stored; `overQuota`: where lmtp_rcpt_check_quota reads the
   * usage at RCPT (server/lmtp-process.ts: both in the mail process of the user's uid); `slots`: where
   * lmtp_user_concurrency_limit is counted (the master's count when LMTP runs in several processes).
   */
  constructor(private readonly sock: Duplex, private readonly config: DovecotConfig, private readonly auth: AuthEngine, private readonly rip: string,
    private readonly deliverer: (d: DeliveryInput) => Promise<DeliveryResult> = deliver,
    private readonly overQuota: OverQuotaCheck = overQuotaAlready,
    private readonly slots: UserSlotTaker = localSlots,
    /** Where messages are spooled, when not mail_temp_dir (the root master's LMTP process: src/server/lmtp-spool-dir.ts). */
    private readonly spoolDir?: string) {
    this.host = config.get('hostname') || hostname();
    this.idleMs = Number(process.env.SEALMAIL_TEST_LMTP_IDLE_MS) || IDLE_MS;
    sock.on('data', guarded((e) => this.fault(e), (d: Buffer) => this.onData(d)));
    sock.on('close', () => this.onClose());
    sock.on('error', () => this.onClose());
    this.log.info(`Connect from ${this.rip || 'local'}`);
    this.reply(`220 ${this.host} ${config.get('login_greeting', { protocol: 'lmtp' }) || 'Dovecot ready.'}`);
    this.armIdle();
  }

  /** lmtp-client.c's last line of a connection: `Disconnect from <ip>: <reason> (state=…)`, once. */
  private logDisconnect(reason: string): void {
    if (this.disconnectLogged) return;
    this.disconnectLogged = true;
    this.log.info(`Disconnect from ${this.rip || 'local'}: ${reason} (state=${this.state()})`);
  }

  private reply(line: string): void { if (!this.closed) this.sock.write(line + '\r\n'); }

  private onData(d: Buffer): Promise<void> | undefined {
    if (this.closed) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    // a client that sends faster than commands are answered or the spool is written waits in its socket
    if (this.running && this.buf.length > INPUT_HIGH_WATER) this.sock.pause();
    return this.pump();
  }

  /**
   * The session's fault boundary: an exception no command handled ends this
   * connection with a 421 (the client keeps the mail queued and retries:
   * nothing was acknowledged that is not on disk) and one log line.
   */
  private fault(e: unknown): void {
    new Logger(`lmtp(${process.pid})`).error(`Internal error: ${faultText(e)}`);
    if (this.closed) { this.sock.destroy(); return; }
    this.reply(`421 4.3.0 ${this.host} Internal error occurred. Refer to server log for more information.`);
    this.closed = true;
    this.disarmIdle();
    this.dropTransaction();
    this.sock.end();
  }

  /** The client went away: a message being received is dropped (its spool file has no name to leave behind). */
  private onClose(): void {
    if (!this.closed) this.logDisconnect('Connection closed');
    this.closed = true;
    this.disarmIdle();
    this.buf = Buffer.alloc(0);
    this.dropTransaction();
  }

  /** Dovecot's smtp-server idle timeout: armed only while input is awaited. */
  private armIdle(): void {
    this.disarmIdle();
    if (!this.closed) this.idle = setTimeout(() => this.idleTimeout(), this.idleMs);
  }

  private disarmIdle(): void {
    if (this.idle) { clearTimeout(this.idle); this.idle = null; }
  }

  private idleTimeout(): void {
    this.idle = null;
    if (this.closed) return;
    const unfinished = this.dot || this.chunk ? ` (unfinished ${this.dot ? 'DATA' : 'BDAT'} command)` : '';
    this.logDisconnect(`Disconnected for inactivity${unfinished}`);
    this.reply(`421 4.4.2 ${this.host} Disconnected for inactivity`);
    // closed for good once the reply is out, whether or not the client ever closes its side
    this.sock.end(() => this.sock.destroy());
    this.onClose();
  }

  /** lib-smtp's smtp_server_state_names, for the disconnect log line. */
  private state(): string {
    if (this.spool) return 'DATA';
    if (this.rcptCount) return 'RCPT TO';
    if (this.from !== null) return 'MAIL FROM';
    return this.helo ? 'READY' : 'GREETING';
  }

  /**
   * Takes the next command line off the buffer. A well-formed BDAT command
   * starts its chunk here (lib-smtp reads the chunk whenever the size
   * parses, even when the end marker is wrong): what follows is raw bytes.
   */
  private nextLine(): Buffer | null {
    for (;;) {
      const i = this.buf.indexOf(0x0a);
      if (i < 0) {
        if (!this.skipping && this.buf.length > MAX_VERB + MAX_PARAMS + 8) { this.skipping = true; const raw = this.buf; this.buf = Buffer.alloc(0); return raw; }
        if (this.skipping) this.buf = Buffer.alloc(0);
        return null;
      }
      const raw = this.buf.subarray(0, i + 1);
      this.buf = this.buf.subarray(i + 1);
      if (this.skipping) { this.skipping = false; continue; }
      const m = /^BDAT +(\d+)(?: +(\S+))? *\r?\n$/i.exec(raw.toString('latin1'));
      if (m && BigInt(m[1]) <= UOFF_MAX) { this.startChunk(Number(m[1]), m[2]); return null; }
      return raw;
    }
  }

  private startChunk(size: number, marker: string | undefined): void {
    const bad = marker !== undefined && marker.toUpperCase() !== 'LAST';
    const accept = !bad && !this.chunkFailed && this.from !== null && this.rcpts.length > 0;
    if (accept && !this.spool) { this.spool = this.newSpool(); this.crlf = new CrlfDecoder(); }
    this.chunk = { size, left: size, last: marker?.toUpperCase() === 'LAST', bad, accept };
  }

  private newSpool(): MessageSpool {
    return new MessageSpool(this.spoolDir ?? (this.config.get('mail_temp_dir', { protocol: 'lmtp' }) || '/tmp'), (m) => this.log.error(m));
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.disarmIdle();
    // the replies to what the client pipelined leave together (lib-smtp corks its ostream the same way)
    this.sock.cork();
    try {
      while (!this.closed) {
        if (this.chunk) {
          // a BDAT chunk: its bytes as they come
          const c = this.chunk;
          const n = Math.min(c.left, this.buf.length);
          if (n) {
            if (c.accept && this.spool) { const spool = this.spool; this.crlf!.push(this.buf.subarray(0, n), (b) => spool.write(b)); }
            this.buf = this.buf.subarray(n);
            c.left -= n;
          }
          await this.spoolBackpressure();
          // the client may have gone while the disk caught up: its transaction is dropped already
          if (this.closed) break;
          if (c.left > 0) { if (!this.buf.length) break; continue; }
          this.chunk = null;
          await (c.bad ? this.line(Buffer.from('BDAT 0 ?\r\n')) : this.bdat(c));
          continue;
        }
        if (this.dot) {
          // DATA: decoded into the spool as it comes
          const spool = this.spool!;
          const r = this.dot.decode(this.buf, (b) => spool.write(b));
          this.buf = this.buf.subarray(r.used);
          if (r.end) { await this.endData(); continue; }
          await this.spoolBackpressure();
          if (!r.used) break;
          continue;
        }
        const raw = this.nextLine();
        if (raw) { await this.line(raw); continue; }
        if (!this.chunk) break;
      }
    } finally {
      this.running = false;
      while (this.sock.writableCorked > 0) this.sock.uncork();
      // our ACK of the input at once: a client holding its next small write for it never waits 40 ms (tcp-socket.ts)
      quickAck(this.sock);
      if (!this.closed) { this.sock.resume(); this.armIdle(); }
    }
  }

  /** The spool's disk writes are behind: wait for them before reading on. */
  private async spoolBackpressure(): Promise<void> {
    if (this.spool && this.spool.backlog > SPOOL_HIGH_WATER) {
      this.sock.pause();
      await this.spool.drain();
    }
  }

  private async line(raw: Buffer): Promise<void> {
    const text = raw.toString('utf8').replace(/\r?\n$/, '');
    const vm = /^[A-Za-z]*/.exec(text)![0];
    const rest = text.slice(vm.length);
    if (vm.length > MAX_VERB || (rest && rest[0] !== ' ')) { this.badCmd('500 5.5.2 Invalid command syntax'); return; }
    if (rest.length - 1 > MAX_PARAMS || raw[raw.length - 1] !== 0x0a) { this.badCmd('500 5.5.2 Line too long'); return; }
    const verb = vm.toUpperCase();
    const arg = rest.slice(1);
    switch (verb) {
      case 'LHLO':
        if (!arg) { this.reply('501 Missing hostname'); return; }
        this.helo = arg.trim();
        this.reset();
        // one write, as lib-smtp's corked ostream sends it: a client reads nothing until the last line
        this.reply([`250-${this.host}`, '250-8BITMIME', '250-CHUNKING', '250-ENHANCEDSTATUSCODES', '250 PIPELINING'].join('\r\n'));
        return;
      case 'MAIL': this.mail(arg); return;
      case 'RCPT': await this.rcpt(arg); return;
      case 'DATA':
        if (arg) { this.reply('501 5.5.4 Invalid parameters'); return; }
        if (this.chunkFailed) { this.reply('503 5.5.0 Previous data chunk failed, issue RSET first'); return; }
        if (this.from === null) { this.reply('503 5.5.0 MAIL needed first'); return; }
        if (!this.rcpts.length) { this.reply('503 5.5.0 No valid recipients'); return; }
        if (this.spool) { this.reply('503 5.5.0 Bad sequence of commands'); return; }
        this.spool = this.newSpool();
        this.dot = new DotDecoder();
        this.reply('354 OK');
        return;
      case 'BDAT':
        // a well-formed BDAT was taken off the wire with its chunk; what reaches here is malformed
        if (!/^\d+(\s|$)/.test(arg) || BigInt(/^\d+/.exec(arg)![0]) > UOFF_MAX) this.reply('501 5.5.4 Invalid chunk size parameter');
        else this.reply('501 5.5.4 Invalid end marker parameter');
        this.chunkFailed = true;
        return;
      case 'RSET':
        if (arg) { this.reply('501 5.5.4 Invalid parameters'); return; }
        this.reset(); this.reply('250 2.0.0 OK'); return;
      case 'NOOP':
        if (arg && !SMTP_STRING.test(arg)) { this.reply('501 5.5.4 Invalid string parameter: Invalid character in string'); return; }
        this.reply('250 2.0.0 OK'); return;
      case 'VRFY':
        if (!arg) { this.reply('501 5.5.4 Invalid parameters'); return; }
        if (!SMTP_STRING.test(arg)) { this.reply('501 5.5.4 Invalid string parameter: Invalid character in string'); return; }
        this.reply('252 2.3.3 Try RCPT instead'); return;
      case 'QUIT':
        if (arg) { this.reply('501 5.5.4 Invalid parameters'); return; }
        this.reply('221 2.0.0 Bye'); this.logDisconnect('Logged out'); this.sock.end(); this.closed = true; return;
      default: this.badCmd('500 5.5.1 Unknown command');
    }
  }

  private reset(): void {
    this.dropTransaction();
    this.from = null; this.rcptCount = 0; this.chunkFailed = false;
  }

  /** The transaction's recipients let go (their concurrency slots) and its message dropped. */
  private dropTransaction(): void {
    for (const r of this.rcpts) r.slot.release();
    this.rcpts = [];
    for (const b of this.backends.values()) b.close();
    this.backends.clear();
    void this.spool?.close();
    this.spool = null; this.dot = null; this.crlf = null; this.chunk = null;
  }

  private mail(arg: string): void {
    const m = /^FROM:(.*)$/i.exec(arg);
    if (!m) { this.reply('501 5.5.4 Invalid parameters'); return; }
    const p = this.path(m[1], 'FROM');
    if (typeof p === 'string') { this.reply(p); return; }
    if (this.from !== null) { this.reply('503 5.5.0 MAIL already given'); return; }
    for (const param of p.params) {
      const [k, v] = param.split('=', 2);
      if (k.toUpperCase() === 'BODY' && v !== undefined) {
        if (!/^(7BIT|8BITMIME)$/i.test(v)) { this.reply('555 5.5.4 Unsupported mail BODY type'); return; }
      } else { this.reply('555 5.5.4 Unsupported parameters'); return; }
    }
    this.from = p.path;
    this.mailParams = p.params;
    this.transactions++;
    this.reply('250 2.1.0 OK');
  }

  /** `<path> params…` as lib-smtp parses it; a string is the error reply. */
  private path(s: string, what: 'FROM' | 'TO'): { path: string; params: string[] } | string {
    if (s.startsWith(' ')) return `501 5.5.4 Invalid ${what}: Unexpected whitespace before path`;
    if (!s.startsWith('<')) return `501 5.5.4 Invalid ${what}: Missing '<' at beginning of path`;
    const end = s.indexOf('>');
    if (end < 0) return `501 5.5.4 Invalid ${what}: Missing '>' at end of path`;
    const path = s.slice(1, end);
    if (!path && what === 'TO') return `501 5.5.4 Invalid ${what}: Null path not allowed`;
    return { path, params: s.slice(end + 1).split(' ').filter(Boolean) };
  }

  private async rcpt(arg: string): Promise<void> {
    const m = /^TO:(.*)$/i.exec(arg);
    if (!m) { this.reply('501 5.5.4 Invalid parameters'); return; }
    if (this.from === null) { this.reply('503 5.5.0 MAIL needed first'); return; }
    const p = this.path(m[1], 'TO');
    if (typeof p === 'string') { this.reply(p); return; }
    if (p.params.length) { this.reply('555 5.5.4 Unsupported parameters'); return; }
    const index = ++this.rcptCount;
    if (this.config.getBool('lmtp_proxy', { protocol: 'lmtp' })) {
      const proxied = await this.proxyRcpt(p.path, index);
      if (proxied) return;
    }
    const c = await checkRecipient(this.config, this.auth, p.path, this.overQuota);
    if (!c.ok) { this.reply(c.text); return; }
    const slot = await takeUserSlot(c.user, Number(this.config.get('lmtp_user_concurrency_limit', { protocol: 'lmtp' })) || 0, this.slots);
    if (!slot) { this.reply(`451 4.3.0 <${p.path}> Too many concurrent deliveries for user`); return; }
    // the connection may have gone while the userdb answered
    if (this.closed) { slot.release(); return; }
    this.rcpts.push({ address: p.path, user: c.user, detail: c.detail, index, slot });
    this.reply('250 2.1.5 OK');
  }

  /** The transaction's session id, and a recipient's (`:R<n>` after the first). */
  private transactionId(): string { return this.transactions > 1 ? `${this.id}:T${this.transactions}` : this.id; }
  private recipientId(index: number): string { return index > 1 ? `${this.transactionId()}:R${index}` : this.transactionId(); }

  /**
   * lmtp_proxy_rcpt: a recipient the passdb sends to a backend is answered
   * with the backend's RCPT reply (true); false: deliver it locally.
   */
  private async proxyRcpt(address: string, index: number): Promise<boolean> {
    const { user, detail } = splitDetail(address, this.config.get('recipient_delimiter', { protocol: 'lmtp' }));
    const delim = detail ? address.slice(user.length, user.length + 1) : '';
    const sid = this.recipientId(index);
    const sock = this.sock as Duplex & { localAddress?: string; localPort?: number; remotePort?: number };
    const client: ProxyClientInfo = {
      lip: sock.localAddress ?? '', lport: sock.localPort ?? 0, rip: this.rip, rport: sock.remotePort ?? 0,
      selfIps: this.config.get('auth_proxy_self', { protocol: 'lmtp' }).split(/\s+/).filter(Boolean),
    };
    const a = await this.auth.authenticate(user, undefined, { service: 'lmtp', rip: this.rip, lip: client.lip, lport: client.lport, session: sid });
    if (a.result === 'tempfail') { this.reply('451 4.3.0 Temporary user lookup failure'); return true; }
    // not in the passdb: delivered locally
    if (a.result !== 'ok') return false;
    const log = Logger.forUser('lmtp', user);
    const target = lmtpProxyTarget(a.fields, user, client, (m) => log.error(m));
    if (!target) return false;
    if (!target.destuser && proxiesToItself(target, client)) {
      log.error(`Proxying to <${user}> loops to itself`);
      this.reply('554 5.4.6 Proxying loops to itself');
      return true;
    }
    if (this.closed) return true;
    const key = `${target.host}\0${target.ip ?? ''}\0${target.port}`;
    let conn = this.backends.get(key);
    if (!conn) {
      conn = new BackendConnection(target, {
        sessionId: this.transactionId(), mailFrom: this.from!, mailParams: this.mailParams, helo: this.helo, myHostname: this.host, client, ttl: LMTP_PROXY_DEFAULT_TTL,
      }, this.backends.size + 1);
      this.backends.set(key, conn);
    }
    // `destuser`: the address at the backend is that user with the recipient's detail
    const there = target.destuser ? (detail ? target.destuser.replace(/@|$/, `${delim}${detail}$&`) : target.destuser) : address;
    const r = await conn.rcpt(there);
    if (this.closed) return true;
    const ok = !('error' in r) && r.code >= 200 && r.code < 300;
    this.reply(relayedReply(r, sid, address, true));
    if (ok) this.rcpts.push({ address, user, detail, index, slot: NO_SLOT, proxy: { conn, address: there } });
    return true;
  }

  /** A BDAT chunk has been read off the wire (into the spool when it was accepted). */
  private async bdat(c: Chunk): Promise<void> {
    if (this.chunkFailed) { this.reply('503 5.5.0 Previous data chunk failed, issue RSET first'); return; }
    const fail = (line: string) => { this.chunkFailed = true; this.reply(line); };
    if (this.from === null) { fail('503 5.5.0 MAIL needed first'); return; }
    if (!this.rcpts.length) { fail('503 5.5.0 No valid recipients'); return; }
    if (!c.last) { this.reply(`250 2.0.0 Added ${c.size} octets`); return; }
    const spool = this.spool!;
    this.crlf!.end((b) => spool.write(b));
    await this.endMessage();
  }

  private badCmd(line: string): void {
    if (++this.bad > MAX_BAD) { this.reply(`421 4.7.0 ${this.host} Too many invalid commands.`); this.sock.end(); this.closed = true; return; }
    this.reply(line);
  }

  private async endData(): Promise<void> {
    this.dot = null;
    await this.endMessage();
  }

  /** The message is in: on disk (or in memory when small), then delivered; a spool that failed answers 451 for each recipient. */
  private async endMessage(): Promise<void> {
    const spool = this.spool!;
    this.spool = null;
    this.crlf = null;
    try {
      let message: SpooledMessage;
      try { message = await spool.finish(); } catch {
        for (const r of this.rcpts) this.reply(`451 4.3.0 <${r.address}> Temporary internal failure`);
        this.reset();
        return;
      }
      await this.finish(message);
    } finally {
      await spool.close();
    }
  }

  /** Delivers to every recipient and answers for each; a stream cut before this point stores nothing. */
  private async finish(message: SpooledMessage): Promise<void> {
    const rcpts = this.rcpts;
    const from = this.from!;
    // the recipients keep their concurrency slots until each one's delivery is done
    this.rcpts = [];
    // the backend connections are the transaction's: closed once their replies are in
    const backends = [...this.backends.values()];
    this.backends.clear();
    const tid = this.transactionId();
    this.reset();
    // lmtp_proxy_data: each backend gets the message once, all at the same time; its replies are used in RCPT order
    const proxied = new Map<BackendConnection, Promise<BackendReply[]>>();
    for (const b of backends) {
      if (!b.accepted.length) continue;
      const header = Buffer.from(received({ config: this.config, heloName: this.helo, rip: this.rip, sessionId: tid, mailFrom: from, single: rcpts.length === 1, rcpt: rcpts[0].address }));
      proxied.set(b, b.data(header, message));
    }
    const taken = new Map<BackendConnection, number>();
    const done = new Map<string, string>();
    const tx0 = process.hrtime.bigint();
    let succeeded = 0;
    for (const r of rcpts) {
      const sid = r.index > 1 ? `${tid}:R${r.index}` : tid;
      // a proxied recipient named twice was sent twice: each has its own reply from the backend
      if (r.proxy) {
        const k = taken.get(r.proxy.conn) ?? 0;
        taken.set(r.proxy.conn, k + 1);
        const res = (await proxied.get(r.proxy.conn)!)[k];
        logDataReply(r.user, sid, r.proxy.address, r.proxy.conn, res, r.index, rcpts.length);
        const line = relayedReply(res, sid, r.address, false);
        if (line.startsWith('2')) succeeded++;
        done.set(r.address, line);
        this.reply(line);
        continue;
      }
      const prev = done.get(r.address);
      if (prev) { r.slot.release(); this.reply(prev); continue; }
      // anything unexpected (a home the mail user cannot write…) is a temporary failure for this recipient, never a crash
      const t0 = process.hrtime.bigint();
      const res = await this.deliverer({ config: this.config, auth: this.auth, user: r.user, detail: r.detail, rcpt: r.address, mailFrom: from, heloName: this.helo, rip: this.rip, sessionId: tid, single: rcpts.length === 1, message })
        .catch((e: Error) => { Logger.forUser('lmtp', r.user).error(`delivery failed: ${e.message}`); return { ok: false as const, temp: true, code: '451 4.2.0', text: 'Temporary internal error' }; })
        .finally(() => r.slot.release());
      // Dovecot's mail_delivery_finished (lib-lda/mail-deliver.c), with the error of a failed one
      statsEvent('mail_delivery_finished', res.ok ? { user: r.user } : { user: r.user, error: res.text }, t0);
      const line = res.ok ? `250 2.0.0 <${r.address}> ${sid} Saved` : `${res.code} <${r.address}> ${res.text}`;
      if (res.ok) succeeded++;
      done.set(r.address, line);
      this.reply(line);
    }
    for (const b of backends) b.close();
    // lib-smtp's smtp_server_transaction_finished, counted from the end of DATA (the master does not see MAIL FROM)
    statsEvent('smtp_server_transaction_finished', { recipients: rcpts.length, recipients_succeeded: succeeded, recipients_failed: rcpts.length - succeeded }, tx0);
  }
}
