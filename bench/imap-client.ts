/**
 * A minimal lock-step IMAP client for the benchmarks: each command waits
 * for its tagged reply, the response bytes are discarded as they arrive (a
 * FETCH of 100k messages must not be buffered), the elapsed time returned.
 */
import { connect, type Socket } from 'node:net';

export class Conn {
  private buf = '';
  private wait: { tag: string; res: () => void } | null = null;
  private n = 0;
  constructor(readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      if (this.buf.length > 1 << 20) this.buf = this.buf.slice(-4096);
      if (this.wait && new RegExp(`(^|\\r\\n)${this.wait.tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n$`).test(this.buf)) { const w = this.wait; this.wait = null; this.buf = ''; w.res(); }
    });
  }
  static async open(port: number): Promise<Conn> {
    const s = connect(port, '127.0.0.1');
    await new Promise<void>((r) => s.once('data', () => r()));
    return new Conn(s);
  }
  async cmd(text: string): Promise<number> {
    const tag = `t${++this.n}`;
    const t0 = process.hrtime.bigint();
    await new Promise<void>((res) => { this.wait = { tag, res }; this.sock.write(`${tag} ${text}\r\n`); });
    return Number(process.hrtime.bigint() - t0) / 1e6;
  }
}

