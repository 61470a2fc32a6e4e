/**
 * One LMTP connection (RFC 2033, RFC 3030 CHUNKING) with the replies of
 * Dovecot 2.3's lib-smtp server, checked by test/lmtp/lmtp-diff.test.ts:
 * greeting, LHLO capabilities, MAIL/RCPT path and parameter errors,
 * DATA with dot-unstuffing (CRLF or bare LF), BDAT chunks, one reply per
 * recipient (250 only once the message is on disk; a repeated address shares
 * the first one's delivery), session ids `<id>[:T<n>][:R<k>]`, the 32-byte
 * verb and 4096-byte parameter limits, and the bad-command limit (10).
 * Pipelined commands are handled in order. Delivery is src/lmtp/delivery.ts.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type { AuthEngine } from '../auth/engine.js';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import { checkRecipient, deliver } from './delivery.js';
import { faultText, guarded } from '../util/fault.js';

const MAX_BAD = 10;
const MAX_VERB = 32;
const MAX_PARAMS = 4096;
const MAX_MESSAGE = 64 * 1024 * 1024;

/** RFC 5321 `String`: an Atom or a Quoted-string (VRFY's and NOOP's argument). */
const SMTP_STRING = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+|"(?:[^"\\\r\n]|\\.)*")$/;

interface Rcpt { address: string; user: string; detail: string; index: number }

type Input = { kind: 'line'; raw: Buffer } | { kind: 'chunk'; data: Buffer; last: boolean; bad: boolean };

export class LmtpSession {
  private buf: Buffer = Buffer.alloc(0);
  private queue: Input[] = [];
  private running = false;
  private helo = '';
  private from: string | null = null;
  private rcpts: Rcpt[] = [];
  private rcptCount = 0;
  private transactions = 0;
  /** DATA body lines while in DATA. */
  private data: Buffer[] | null = null;
  private dataSize = 0;
  /** BDAT chunks of the transaction so far; null when no BDAT was given. */
  private chunks: Buffer[] | null = null;
  private chunkFailed = false;
  /** Bytes of a BDAT chunk still to be read off the wire. */
  private chunkLeft = 0;
  private chunkCmd: { last: boolean; bad: boolean } | null = null;
  /** Skipping the rest of a too-long line. */
  private skipping = false;
  private bad = 0;
  private closed = false;
  private readonly id = randomBytes(16).toString('base64').slice(0, 22);
  private readonly host: string;

  constructor(private readonly sock: Duplex, private readonly config: DovecotConfig, private readonly auth: AuthEngine, private readonly rip: string) {
    this.host = config.get('hostname') || hostname();
    sock.on('data', guarded((e) => this.fault(e), (d: Buffer) => this.onData(d)));
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => { this.closed = true; });
    this.reply(`220 ${this.host} ${config.get('login_greeting', { protocol: 'lmtp' }) || 'Dovecot ready.'}`);
  }

  private reply(line: string): void { if (!this.closed) this.sock.write(line + '\r\n'); }

  private onData(d: Buffer): Promise<void> {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
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
    this.sock.end();
  }

  /**
   * Takes the next command line, DATA line or BDAT chunk off the buffer, in
   * the state the previous command left: a BDAT's chunk is raw bytes, never
   * commands, and a rejected DATA leaves the next lines commands.
   */
  private next(): Input | null {
    if (this.chunkCmd) {
      if (this.buf.length < this.chunkLeft) return null;
      const data = this.buf.subarray(0, this.chunkLeft);
      this.buf = this.buf.subarray(this.chunkLeft);
      const cmd = this.chunkCmd;
      this.chunkCmd = null;
      return { kind: 'chunk', data, ...cmd };
    }
    for (;;) {
      const i = this.buf.indexOf(0x0a);
      if (i < 0) {
        if (!this.data && !this.skipping && this.buf.length > MAX_VERB + MAX_PARAMS + 8) { this.skipping = true; const raw = this.buf; this.buf = Buffer.alloc(0); return { kind: 'line', raw }; }
        if (this.skipping) this.buf = Buffer.alloc(0);
        return null;
      }
      const raw = this.buf.subarray(0, i + 1);
      this.buf = this.buf.subarray(i + 1);
      if (this.skipping) { this.skipping = false; continue; }
      if (!this.data) {
        // lib-smtp reads the chunk whenever the size parses, even when the end marker is wrong
        const m = /^BDAT +(\d+)(?: +(\S+))? *\r?\n$/i.exec(raw.toString('latin1'));
        if (m) { this.chunkCmd = { last: m[2]?.toUpperCase() === 'LAST', bad: m[2] !== undefined && m[2].toUpperCase() !== 'LAST' }; this.chunkLeft = Number(m[1]); return this.next() ?? { kind: 'line', raw: Buffer.alloc(0) }; }
      }
      return { kind: 'line', raw };
    }
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (!this.closed) {
        const inp = this.next();
        if (!inp) break;
        if (inp.kind === 'chunk') await (inp.bad ? this.line(Buffer.from('BDAT 0 ?\r\n')) : this.bdat(inp.data, inp.last));
        else if (inp.kind === 'line' && inp.raw.length) await this.line(inp.raw);
      }
    } finally { this.running = false; }
  }

  private async line(raw: Buffer): Promise<void> {
    if (this.data) {
      const l = raw.toString('latin1').replace(/\r?\n$/, '');
      if (l === '.') { await this.endData(); return; }
      const body = raw[0] === 0x2e ? raw.subarray(1) : raw; // dot-unstuffing
      const lf = body.length >= 2 && body[body.length - 2] === 0x0d && body[body.length - 1] === 0x0a ? Buffer.concat([body.subarray(0, body.length - 2), Buffer.from('\n')]) : body;
      this.dataSize += lf.length;
      if (this.dataSize <= MAX_MESSAGE) this.data.push(lf);
      return;
    }
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
        if (this.chunks) { this.reply('503 5.5.0 Bad sequence of commands'); return; }
        this.data = [];
        this.dataSize = 0;
        this.reply('354 OK');
        return;
      case 'BDAT':
        // a well-formed BDAT was taken off the wire with its chunk; what reaches here is malformed
        if (!/^\d+(\s|$)/.test(arg)) this.reply('501 5.5.4 Invalid chunk size parameter');
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
        this.reply('221 2.0.0 Bye'); this.sock.end(); this.closed = true; return;
      default: this.badCmd('500 5.5.1 Unknown command');
    }
  }

  private reset(): void {
    this.from = null; this.rcpts = []; this.rcptCount = 0; this.chunks = null; this.chunkFailed = false;
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
    const c = await checkRecipient(this.config, this.auth, p.path);
    if (!c.ok) { this.reply(c.text); return; }
    this.rcpts.push({ address: p.path, user: c.user, detail: c.detail, index });
    this.reply('250 2.1.5 OK');
  }

  private async bdat(chunk: Buffer, last: boolean): Promise<void> {
    if (this.chunkFailed) { this.reply('503 5.5.0 Previous data chunk failed, issue RSET first'); return; }
    const fail = (line: string) => { this.chunkFailed = true; this.reply(line); };
    if (this.from === null) { fail('503 5.5.0 MAIL needed first'); return; }
    if (!this.rcpts.length) { fail('503 5.5.0 No valid recipients'); return; }
    (this.chunks ??= []).push(chunk);
    if (!last) { this.reply(`250 2.0.0 Added ${chunk.length} octets`); return; }
    // BDAT data is the raw message: stored with LF line ends like DATA's
    const message = Buffer.from(Buffer.concat(this.chunks).toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    await this.finish(message);
  }

  private badCmd(line: string): void {
    if (++this.bad > MAX_BAD) { this.reply(`421 4.7.0 ${this.host} Too many invalid commands.`); this.sock.end(); this.closed = true; return; }
    this.reply(line);
  }

  private async endData(): Promise<void> {
    const message = Buffer.concat(this.data!);
    this.data = null;
    if (this.dataSize > MAX_MESSAGE) {
      for (const r of this.rcpts) this.reply(`552 5.3.4 <${r.address}> Message too large`);
      this.reset();
      return;
    }
    await this.finish(message);
  }

  /** Delivers to every recipient and answers for each; a stream cut before this point stores nothing. */
  private async finish(message: Buffer): Promise<void> {
    const rcpts = this.rcpts;
    const from = this.from!;
    this.reset();
    const tid = this.transactions > 1 ? `${this.id}:T${this.transactions}` : this.id;
    const done = new Map<string, string>();
    for (const r of rcpts) {
      const prev = done.get(r.address);
      if (prev) { this.reply(prev); continue; }
      const sid = r.index > 1 ? `${tid}:R${r.index}` : tid;
      // anything unexpected (a home the mail user cannot write…) is a temporary failure for this recipient, never a crash
      const res = await deliver({ config: this.config, auth: this.auth, user: r.user, detail: r.detail, rcpt: r.address, mailFrom: from, heloName: this.helo, rip: this.rip, sessionId: tid, single: rcpts.length === 1, message })
        .catch((e: Error) => { Logger.forUser('lmtp', r.user).error(`delivery failed: ${e.message}`); return { ok: false as const, temp: true, code: '451 4.2.0', text: 'Temporary internal error' }; });
      const line = res.ok ? `250 2.0.0 <${r.address}> ${sid} Saved` : `${res.code} <${r.address}> ${res.text}`;
      done.set(r.address, line);
      this.reply(line);
    }
  }
}
