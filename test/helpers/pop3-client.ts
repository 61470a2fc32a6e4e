/**
 * A POP3 client for protocol tests that knows which replies are multi-line
 * (RFC 1939/2449: CAPA, LIST and UIDL without argument, RETR, TOP, a bare
 * AUTH) and reads each reply whole before sending the next command, so a
 * transcript never depends on timing. The end of the connection is part of
 * the transcript ("<closed>"), so a server that hangs up is seen.
 */
import net from 'node:net';
import tls from 'node:tls';

const WAIT_MS = 60_000;

export class Pop3Wire {
  private buf = Buffer.alloc(0);
  private closed = false;
  private waiter: (() => void) | null = null;

  constructor(readonly sock: net.Socket | tls.TLSSocket) {
    sock.on('data', (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); this.wake(); });
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.on('error', () => undefined);
  }

  static async connect(port: number, opts: { tls?: boolean } = {}): Promise<Pop3Wire> {
    const sock = opts.tls ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => { sock.once(opts.tls ? 'secureConnect' : 'connect', () => resolve()); sock.once('error', reject); });
    return new Pop3Wire(sock);
  }

  private wake(): void { const w = this.waiter; this.waiter = null; w?.(); }

  /** The next CRLF line (without CRLF), or null once the server closed. */
  async line(): Promise<string | null> {
    const end = Date.now() + WAIT_MS;
    for (;;) {
      const i = this.buf.indexOf('\r\n');
      if (i >= 0) {
        const l = this.buf.subarray(0, i).toString('latin1');
        this.buf = this.buf.subarray(i + 2);
        return l;
      }
      if (this.closed) return null;
      if (Date.now() > end) throw new Error(`no reply within ${WAIT_MS} ms (have ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))})`);
      await new Promise<void>((r) => { this.waiter = r; setTimeout(r, 1000).unref(); });
    }
  }

  /** One reply: its first line, and up to the "." line when `multi` and it is +OK. */
  async reply(multi: boolean): Promise<string> {
    const first = await this.line();
    if (first === null) return '<closed>';
    if (!multi || !first.startsWith('+OK')) return first + '\r\n';
    let out = first + '\r\n';
    for (;;) {
      const l = await this.line();
      if (l === null) return out + '<closed>';
      out += l + '\r\n';
      if (l === '.') return out;
    }
  }

  /** Everything until the server closes. */
  async rest(): Promise<string> {
    let out = '';
    for (let l = await this.line(); l !== null; l = await this.line()) out += l + '\r\n';
    return out + '<closed>';
  }

  send(s: string | Buffer): void { this.sock.write(s); }
  close(): void { this.sock.destroy(); }
}

/** Does `cmd`'s +OK reply go on over several lines? */
export function multiLine(cmd: string): boolean {
  const [name, ...args] = cmd.split(' ');
  const n = name.toUpperCase();
  if (n === 'CAPA' || n === 'RETR' || n === 'TOP') return true;
  if (n === 'LIST' || n === 'UIDL' || n === 'AUTH') return args.length === 0;
  return false;
}

/**
 * Run `steps` (one command line each) after the greeting; returns the
 * greeting and every reply. A step after which the server closed ends the
 * run. After QUIT the close itself is awaited.
 */
export async function pop3Script(port: number, steps: string[], opts: { tls?: boolean } = {}): Promise<string[]> {
  const w = await Pop3Wire.connect(port, opts);
  try {
    const out = [await w.reply(false)];
    for (const s of steps) {
      w.send(s + '\r\n');
      const r = await w.reply(multiLine(s));
      out.push(r);
      if (r.endsWith('<closed>')) break;
      if (s.toUpperCase() === 'QUIT') { out.push(await w.rest()); break; }
    }
    return out;
  } finally {
    w.close();
  }
}
