/**
 * A raw line client for connection-limit tests (test/server/limits.test.ts,
 * root-limits.test.ts): it keeps everything the server said, waits (bounded)
 * for a pattern or for the server to close, and a bounded wait for a line
 * in the server's log.
 */
import type { TestContext } from 'node:test';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { SealmailServer } from './sealmail-server.js';

/** A raw line client: everything the server said, waits for a pattern or the close. */
export class Wire {
  buf = '';
  closed = false;
  private constructor(readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => { this.buf += d; });
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => undefined);
  }
  /** `tls`: over TLS from the first byte (imaps), the server's certificate not checked; options: the client's certificate … */
  static async open(t: TestContext, port: number, greeting: RegExp, tls: boolean | ConnectionOptions = false): Promise<Wire> {
    const opts = tls === true ? {} : tls || null;
    const w = new Wire(opts ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...opts }) : connect(port, '127.0.0.1'));
    t.after(() => w.sock.destroy());
    await w.until(greeting, 'greeting');
    return w;
  }
  /** Wait (bounded) until the text since the last wait matches; returns it. */
  async until(re: RegExp, what: string, ms = 20_000): Promise<string> {
    for (const end = Date.now() + ms; !re.test(this.buf);) {
      if (Date.now() > end || (this.closed && !re.test(this.buf))) {
        if (this.closed && Date.now() <= end) await new Promise((r) => setTimeout(r, 50)); // bytes in flight
        if (re.test(this.buf)) break;
        throw new Error(`no ${what}${this.closed ? ' (closed)' : ''}; got ${JSON.stringify(this.buf.slice(-400))}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const out = this.buf;
    this.buf = '';
    return out;
  }
  async gone(what: string, ms = 20_000): Promise<void> {
    for (const end = Date.now() + ms; !this.closed;) {
      if (Date.now() > end) throw new Error(`connection not closed: ${what}; got ${JSON.stringify(this.buf.slice(-300))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  send(line: string): void { this.sock.write(`${line}\r\n`); }
  /** After the server's go-ahead to STARTTLS / STLS: the conversation goes on over TLS on the same connection. */
  async upgrade(t: TestContext, opts: ConnectionOptions = {}): Promise<Wire> {
    this.sock.removeAllListeners('data');
    const s = tlsConnect({ socket: this.sock, rejectUnauthorized: false, ...opts });
    t.after(() => s.destroy());
    const w = new Wire(s);
    await new Promise<void>((resolve, reject) => { s.once('secureConnect', () => resolve()); s.once('error', reject); });
    return w;
  }
}

/** Wait (bounded) for a line in the server's log. */
export async function logged(srv: SealmailServer, re: RegExp, what: string): Promise<string> {
  for (const end = Date.now() + 20_000; ;) {
    const m = re.exec(srv.output());
    if (m) return m[0];
    if (Date.now() > end) throw new Error(`not logged: ${what}\n${srv.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
