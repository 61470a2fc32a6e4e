/**
 * A minimal lock-step IMAP client for the benchmarks: each command waits
 * for its tagged reply, the response bytes are discarded as they arrive (a
 * FETCH of 100k messages must not be buffered), the elapsed time returned.
 * Over plain TCP or IMAPS (the certificate is not checked: the benches' own).
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export class Conn {
  private buf = '';
  private wait: { tag: string; res: () => void } | null = null;
  private cont: (() => void) | null = null;
  /** The last tagged reply's status line (its tag stripped), e.g. "OK Logged in". */
  last = '';
  private n = 0;
  constructor(readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      if (this.buf.length > 1 << 20) this.buf = this.buf.slice(-4096);
      if (this.cont && /(^|\r\n)\+ [^\r\n]*\r\n$/.test(this.buf)) { const c = this.cont; this.cont = null; this.buf = ''; c(); }
      const done = this.wait && new RegExp(`(^|\\r\\n)${this.wait.tag} ((OK|NO|BAD)[^\\r\\n]*)\\r\\n$`).exec(this.buf);
      if (done) { const w = this.wait!; this.wait = null; this.buf = ''; this.last = done[2]; w.res(); }
    });
    // a connection the server closes ends a pending wait (the caller sees `last`)
    sock.on('close', () => { this.last = 'closed'; const w = this.wait; this.wait = null; w?.res(); const c = this.cont; this.cont = null; c?.(); });
    sock.on('error', () => undefined);
  }
  static async open(port: number): Promise<Conn> {
    const s = connect(port, '127.0.0.1');
    await new Promise<void>((r) => s.once('data', () => r()));
    return new Conn(s);
  }
  /** An IMAPS connection, after its greeting. */
  static async openTls(port: number): Promise<Conn> {
    const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    s.on('error', () => undefined);
    await new Promise<void>((r, j) => { s.once('data', () => r()); s.once('close', () => j(new Error('closed before the greeting'))); });
    return new Conn(s);
  }
  /** IDLE, returned once the server's continuation came. */
  async idle(): Promise<void> {
    await new Promise<void>((res) => { this.cont = res; this.sock.write(`t${++this.n} IDLE\r\n`); });
    if (this.last === 'closed') throw new Error('closed before IDLE started');
  }
  async cmd(text: string): Promise<number> {
    const tag = `t${++this.n}`;
    const t0 = process.hrtime.bigint();
    await new Promise<void>((res) => { this.wait = { tag, res }; this.sock.write(`${tag} ${text}\r\n`); });
    return Number(process.hrtime.bigint() - t0) / 1e6;
  }
}

