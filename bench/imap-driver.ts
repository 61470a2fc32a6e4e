/**
 * A lock-step IMAP client for the load generator (bench/imap-mix.ts) that
 * also checks what it is told, per RFC 3501 §2.2.2 and §7: one command
 * outstanding at a time, so every tagged reply must carry that command's
 * tag (anything else is out of order); a tagged NO or BAD is unexpected
 * for the commands the generator sends, except a NO for a message another
 * session expunged meanwhile (RFC 3501 §7.4.1 lets a server refuse those,
 * Dovecot says `[EXPUNGEISSUED]`/"expunged"); an untagged BYE before our
 * LOGOUT, an untagged BAD, a FETCH for a sequence number beyond the last
 * EXISTS, and a close without BYE are errors. Responses are parsed as a
 * stream of lines with their literals skipped by length, so a message body
 * that contains a line looking like a tagged reply is not taken for one.
 * It tracks EXISTS/EXPUNGE so that the generator only names messages the
 * session knows of.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** Everything the invariant checker counts on one connection (or summed over many). */
export interface ProtocolErrors {
  /** Tagged NO not explained by a concurrent expunge. */
  no: number;
  /** Tagged or untagged BAD. */
  bad: number;
  /** Untagged BYE before our LOGOUT, or the connection closed under a command. */
  bye: number;
  /** A tagged reply whose tag is not the outstanding command's. */
  outOfOrder: number;
  /** `* n FETCH` with n greater than the session's message count. */
  seqRange: number;
  /** A command with no tagged reply within the command timeout. */
  timeout: number;
  /** Tagged NO for a message expunged by another session (allowed, counted apart). */
  expungeRace: number;
}

export const noErrors = (): ProtocolErrors => ({ no: 0, bad: 0, bye: 0, outOfOrder: 0, seqRange: 0, timeout: 0, expungeRace: 0 });

export function addErrors(into: ProtocolErrors, e: ProtocolErrors): void {
  for (const k of Object.keys(into) as (keyof ProtocolErrors)[]) into[k] += e[k];
}

/** The errors that are not allowed (everything but the expunge race). */
export const errorCount = (e: ProtocolErrors): number => e.no + e.bad + e.bye + e.outOfOrder + e.seqRange + e.timeout;

/** The first few unexpected lines, for the bench's stderr log. */
const SAMPLES = 5;

export class CheckedConn {
  readonly errors = noErrors();
  /** The mailbox's message count as this session was told (EXISTS minus EXPUNGEs). */
  exists = 0;
  /** Status of the last tagged reply ("OK …", "NO …", "BAD …", "closed", "timeout"). */
  last = '';
  /** Unexpected lines seen (at most SAMPLES). */
  readonly samples: string[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private literalLeft = 0;
  /** The first segment of a response line that continues after a literal. */
  private head: string | null = null;
  private pending: { tag: string; done: () => void; timer: NodeJS.Timeout } | null = null;
  private cont: (() => void) | null = null;
  private n = 0;
  private loggingOut = false;
  private closed = false;

  constructor(readonly sock: Socket, readonly timeoutMs = 60_000) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => { this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d; this.parse(); });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.closed = true;
      const p = this.pending;
      if (p) { this.pending = null; clearTimeout(p.timer); if (!this.loggingOut) this.flag('bye', 'closed under a command'); this.last = 'closed'; p.done(); }
      const c = this.cont; this.cont = null; c?.();
    });
  }

  /** An IMAPS (`tls`) or plain connection, after its greeting (which must be `* OK`). */
  static async open(port: number, tls: boolean, timeoutMs?: number): Promise<CheckedConn> {
    const s = tls ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    const first = await new Promise<Buffer>((r, j) => {
      s.once('data', r);
      s.once('close', () => j(new Error('closed before the greeting')));
    });
    const greeting = first.toString('latin1');
    if (!greeting.startsWith('* OK')) { s.destroy(); throw new Error(`greeting: ${greeting.trim()}`); }
    // the greeting may arrive with more bytes behind it: none are expected, any would be parsed
    const c = new CheckedConn(s, timeoutMs);
    const rest = first.subarray(first.indexOf('\r\n') + 2);
    if (rest.length) { c.buf = rest; c.parse(); }
    return c;
  }

  get isClosed(): boolean { return this.closed; }

  private flag(kind: keyof ProtocolErrors, line: string): void {
    this.errors[kind]++;
    if (kind !== 'expungeRace' && this.samples.length < SAMPLES) this.samples.push(`${kind}: ${line.slice(0, 200)}`);
  }

  private parse(): void {
    for (;;) {
      if (this.literalLeft > 0) {
        const take = Math.min(this.literalLeft, this.buf.length);
        this.buf = this.buf.subarray(take);
        this.literalLeft -= take;
        if (this.literalLeft > 0) return;
      }
      const i = this.buf.indexOf('\r\n');
      if (i < 0) return;
      const part = this.buf.toString('latin1', 0, i);
      this.buf = this.buf.subarray(i + 2);
      const lit = /\{(\d+)\}$/.exec(part);
      if (lit) {
        this.head ??= part;
        this.literalLeft = Number(lit[1]);
        continue;
      }
      const line = this.head ?? part;
      this.head = null;
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    if (line.startsWith('+')) {
      const c = this.cont;
      this.cont = null;
      if (c) c(); else this.flag('outOfOrder', `continuation nobody asked for: ${line}`);
      return;
    }
    if (line.startsWith('* ')) {
      const m = /^\* (\d+) (EXISTS|EXPUNGE|FETCH)\b/i.exec(line);
      if (m) {
        const n = Number(m[1]);
        const what = m[2].toUpperCase();
        if (what === 'EXISTS') this.exists = n;
        else if (what === 'EXPUNGE') { if (n > this.exists) this.flag('seqRange', line); this.exists--; }
        else if (n > this.exists || n < 1) this.flag('seqRange', line);
      } else if (/^\* BYE\b/i.test(line)) {
        if (!this.loggingOut) this.flag('bye', line);
      } else if (/^\* BAD\b/i.test(line)) this.flag('bad', line);
      return;
    }
    const sp = line.indexOf(' ');
    const tag = line.slice(0, sp);
    const status = line.slice(sp + 1);
    const p = this.pending;
    if (!p || p.tag !== tag) { this.flag('outOfOrder', `${line} (waiting for ${p?.tag ?? 'nothing'})`); return; }
    this.pending = null;
    this.cont = null; // an APPEND refused before its continuation
    clearTimeout(p.timer);
    this.last = status;
    if (/^NO\b/i.test(status)) {
      if (/EXPUNGEISSUED|expunged/i.test(status)) this.flag('expungeRace', line); else this.flag('no', line);
    } else if (/^BAD\b/i.test(status)) this.flag('bad', line);
    else if (!/^OK\b/i.test(status)) this.flag('bad', `unknown status: ${line}`);
    p.done();
  }

  /** Sends `text` (or, for APPEND, `text` then `literal` after the continuation); resolves with the ms to the tagged reply. */
  async cmd(text: string, literal?: Buffer): Promise<number> {
    if (this.closed) { this.last = 'closed'; return 0; }
    const tag = `m${++this.n}`;
    if (/^LOGOUT\b/i.test(text)) this.loggingOut = true;
    const t0 = process.hrtime.bigint();
    await new Promise<void>((done) => {
      const timer = setTimeout(() => {
        this.pending = null;
        this.flag('timeout', `${tag} ${text}`);
        this.last = 'timeout';
        this.sock.destroy();
        done();
      }, this.timeoutMs);
      this.pending = { tag, done, timer };
      if (literal) {
        this.cont = () => { if (!this.closed) this.sock.write(Buffer.concat([literal, Buffer.from('\r\n')])); };
        this.sock.write(`${tag} ${text} {${literal.length}}\r\n`);
      } else this.sock.write(`${tag} ${text}\r\n`);
    });
    return Number(process.hrtime.bigint() - t0) / 1e6;
  }

  /** LOGOUT, then wait for the close (bounded by the command timeout). */
  async logout(): Promise<number> {
    const ms = await this.cmd('LOGOUT');
    this.sock.end();
    if (!this.closed) await new Promise<void>((r) => { const t = setTimeout(r, 2000); this.sock.once('close', () => { clearTimeout(t); r(); }); });
    return ms;
  }
}
