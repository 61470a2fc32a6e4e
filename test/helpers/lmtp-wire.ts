/**
 * A raw LMTP client for tests that need the wire itself (a message cut
 * mid-DATA, pipelined commands, idle connections): it collects what the
 * server sends, and `send` writes and waits until a reply matches, within a
 * bounded time (never a fixed sleep). `until` polls any condition likewise.
 */
import net from 'node:net';

export async function until<T>(what: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export class LmtpWire {
  readonly sock: net.Socket;
  /** What the server sent since the last `send`. */
  text = '';
  closed = false;
  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('data', (d: Buffer) => { this.text += d.toString('latin1'); });
    this.sock.on('error', () => undefined);
    this.sock.on('close', () => { this.closed = true; });
  }

  /** Waits until what the server sent matches; the match. */
  async expect(re: RegExp, ms = 20_000): Promise<string> {
    return until(`${re} in ${JSON.stringify(this.text.slice(-300))}`, () => re.exec(this.text)?.[0], ms);
  }

  async send(s: string | Buffer, re: RegExp, ms?: number): Promise<string> {
    this.text = '';
    this.sock.write(s);
    return this.expect(re, ms);
  }

  /** Greeting and LHLO. */
  async hello(): Promise<void> {
    await this.expect(/^220 .*\r\n/m);
    await this.send('LHLO client.example\r\n', /^250 PIPELINING\r\n/m);
  }
}
