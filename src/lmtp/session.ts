/**
 * One LMTP connection (RFC 2033) with Dovecot 2.3's replies: greeting,
 * LHLO capabilities, MAIL/RCPT/DATA/RSET/NOOP/QUIT/VRFY, dot-unstuffing,
 * one reply per accepted recipient after DATA (250 only once the message is
 * on disk), pipelining (commands are handled in order as they arrive), and
 * the bad-command limit. Delivery itself is src/lmtp/delivery.ts.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { AuthEngine } from '../auth/engine.js';
import type { DovecotConfig } from '../config/settings.js';
import { checkRecipient, deliver } from './delivery.js';

const MAX_BAD = 10;
const MAX_MESSAGE = 64 * 1024 * 1024;

export class LmtpSession {
  private buf: Buffer = Buffer.alloc(0);
  private queue: Buffer[] = [];
  private running = false;
  private helo = '';
  private from: string | null = null;
  private rcpts: { address: string; user: string; detail: string }[] = [];
  private data: Buffer[] | null = null;
  private dataSize = 0;
  private bad = 0;
  private closed = false;
  private readonly id = randomBytes(16).toString('base64').replace(/[+/=]/g, '').slice(0, 22);
  private readonly host: string;

  constructor(private readonly sock: Duplex, private readonly config: DovecotConfig, private readonly auth: AuthEngine, private readonly rip: string) {
    this.host = config.get('hostname') || 'localhost';
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => { this.closed = true; });
    this.reply(`220 ${this.host} ${config.get('login_greeting', { protocol: 'lmtp' }) || 'Dovecot ready.'}`);
  }

  private reply(line: string): void { if (!this.closed) this.sock.write(line + '\r\n'); }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let i;
    while ((i = this.buf.indexOf(0x0a)) >= 0) {
      this.queue.push(this.buf.subarray(0, i + 1));
      this.buf = this.buf.subarray(i + 1);
    }
    if (this.buf.length > MAX_MESSAGE) { this.reply('500 5.5.2 Line too long'); this.sock.end(); return; }
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length && !this.closed) await this.line(this.queue.shift()!);
    } finally { this.running = false; }
  }

  private async line(raw: Buffer): Promise<void> {
    if (this.data) {
      const l = raw.toString('latin1').replace(/\r?\n$/, '');
      if (l === '.') { await this.endData(); return; }
      const body = raw[0] === 0x2e ? raw.subarray(1) : raw; // dot-unstuffing
      const lf = body[body.length - 2] === 0x0d ? Buffer.concat([body.subarray(0, body.length - 2), Buffer.from('\n')]) : body;
      this.dataSize += lf.length;
      if (this.dataSize <= MAX_MESSAGE) this.data.push(lf);
      return;
    }
    const text = raw.toString('utf8').replace(/\r?\n$/, '');
    const sp = text.indexOf(' ');
    const verb = (sp < 0 ? text : text.slice(0, sp)).toUpperCase();
    const arg = sp < 0 ? '' : text.slice(sp + 1);
    switch (verb) {
      case 'LHLO':
        if (!arg) { this.badCmd('501 5.5.4 Missing hostname'); return; }
        this.helo = arg.trim();
        this.from = null; this.rcpts = [];
        for (const l of [`250-${this.host}`, '250-8BITMIME', '250-ENHANCEDSTATUSCODES', '250 PIPELINING']) this.reply(l);
        return;
      case 'MAIL': {
        if (!this.helo) { this.badCmd('503 5.5.1 LHLO needed first'); return; }
        if (this.from !== null) { this.badCmd('503 5.5.1 MAIL already given'); return; }
        const m = /^FROM:\s*<([^>]*)>\s*(.*)$/i.exec(arg);
        if (!m) { this.badCmd('501 5.5.4 Invalid parameters'); return; }
        const params = m[2].trim().split(/\s+/).filter(Boolean);
        if (params.some((p) => !/^BODY=(7BIT|8BITMIME)$/i.test(p))) { this.badCmd('555 5.5.4 Unsupported parameters'); return; }
        this.from = m[1];
        this.reply('250 2.1.0 OK');
        return;
      }
      case 'RCPT': {
        if (this.from === null) { this.badCmd('503 5.5.1 MAIL needed first'); return; }
        const m = /^TO:\s*<([^>]+)>\s*$/i.exec(arg);
        if (!m) { this.badCmd('501 5.5.4 Invalid parameters'); return; }
        const c = await checkRecipient(this.config, this.auth, m[1]);
        if (!c.ok) { this.reply(c.text); return; }
        this.rcpts.push({ address: m[1], user: c.user, detail: c.detail });
        this.reply('250 2.1.5 OK');
        return;
      }
      case 'DATA':
        if (this.from === null) { this.badCmd('503 5.5.1 MAIL needed first'); return; }
        if (!this.rcpts.length) { this.badCmd('554 5.5.1 No valid recipients'); return; }
        this.data = [];
        this.dataSize = 0;
        this.reply('354 OK');
        return;
      case 'RSET': this.from = null; this.rcpts = []; this.reply('250 2.0.0 OK'); return;
      case 'NOOP': this.reply('250 2.0.0 OK'); return;
      case 'VRFY': this.reply('252 2.3.3 Try RCPT instead'); return;
      case 'QUIT': this.reply('221 2.0.0 Bye'); this.sock.end(); this.closed = true; return;
      default: this.badCmd('500 5.5.1 Unknown command');
    }
  }

  private badCmd(line: string): void {
    this.reply(line);
    if (++this.bad >= MAX_BAD) { this.reply(`421 4.7.0 ${this.host} Too many invalid commands.`); this.sock.end(); this.closed = true; }
  }

  private async endData(): Promise<void> {
    const message = Buffer.concat(this.data!);
    this.data = null;
    const rcpts = this.rcpts;
    const from = this.from!;
    this.from = null; this.rcpts = [];
    if (this.dataSize > MAX_MESSAGE) { for (const r of rcpts) this.reply(`552 5.3.4 <${r.address}> Message too large`); return; }
    const seen = new Set<string>();
    for (const [n, r] of rcpts.entries()) {
      const sid = n === 0 ? this.id : `${this.id}:R${n + 1}`;
      if (seen.has(r.user + '\0' + r.detail)) { this.reply(`250 2.0.0 <${r.address}> ${sid} Saved`); continue; }
      seen.add(r.user + '\0' + r.detail);
      const res = await deliver({ config: this.config, auth: this.auth, user: r.user, detail: r.detail, rcpt: r.address, mailFrom: from, heloName: this.helo, rip: this.rip, sessionId: this.id, message });
      this.reply(res.ok ? `250 2.0.0 <${r.address}> ${sid} Saved` : `${res.code} <${r.address}> ${res.text}`);
    }
  }
}
