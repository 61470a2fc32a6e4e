/**
 * A small line-level IMAP client for server tests: waits for a tagged reply
 * and returns everything received since the last wait, raw.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export class ImapLine {
  private buf = '';
  constructor(readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => { this.buf += d; });
    sock.on('error', () => undefined);
  }
  static async open(port: number, tls = false): Promise<ImapLine> {
    const sock = tls ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : netConnect(port, '127.0.0.1');
    const l = new ImapLine(sock);
    await l.until(/^\* (OK|PREAUTH) .*\r\n/, 'greeting');
    return l;
  }
  async until(re: RegExp, what: string, ms = 15_000): Promise<string> {
    const end = Date.now() + ms;
    while (!re.test(this.buf)) {
      if (Date.now() > end) throw new Error(`no ${what}; got ${JSON.stringify(this.buf.slice(-300))}`);
      if (this.sock.destroyed) throw new Error(`closed waiting for ${what}; got ${JSON.stringify(this.buf.slice(-300))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const out = this.buf;
    this.buf = '';
    return out;
  }
  async cmd(tag: string, text: string): Promise<string> {
    this.sock.write(`${tag} ${text}\r\n`);
    return this.until(new RegExp(`(^|\\r\\n)${tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n$`), `reply to ${tag} ${text}`);
  }
  close(): void { this.sock.destroy(); }
}
