/**
 * A minimal SMTP submission client for the end-to-end tests (RFC 5321 with
 * AUTH PLAIN, RFC 4954): enough to submit one message and report every
 * reply, so a test can assert Postfix's answers (235, 250, 5xx) exactly.
 */
import { connect, type Socket } from 'node:net';

export interface SmtpResult { replies: string[]; ok: boolean; lastCode: number }

class Lines {
  private buf = '';
  private waiters: ((l: string) => void)[] = [];
  private queue: string[] = [];
  constructor(sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        const l = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        const w = this.waiters.shift();
        if (w) w(l); else this.queue.push(l);
      }
    });
  }
  next(): Promise<string> {
    const q = this.queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    return new Promise((res) => this.waiters.push(res));
  }
  /** A whole (multi-line) reply. */
  async reply(): Promise<string> {
    const out: string[] = [];
    for (;;) {
      const l = await this.next();
      out.push(l);
      if (l[3] !== '-') return out.join('\n');
    }
  }
}

export async function sendMail(port: number, opts: { from: string; to: string[]; data: string; auth?: { user: string; pass: string } }): Promise<SmtpResult> {
  const sock = connect(port, '127.0.0.1');
  await new Promise<void>((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  const lines = new Lines(sock);
  const replies: string[] = [];
  let last = 0;
  const step = async (cmd: string | null): Promise<number> => {
    if (cmd !== null) sock.write(cmd + '\r\n');
    const r = await lines.reply();
    replies.push(r);
    last = Number(r.slice(0, 3));
    return last;
  };
  try {
    if (await step(null) !== 220) return { replies, ok: false, lastCode: last };
    if (await step('EHLO client.example.net') !== 250) return { replies, ok: false, lastCode: last };
    if (opts.auth) {
      const b64 = Buffer.from(`\0${opts.auth.user}\0${opts.auth.pass}`).toString('base64');
      if (await step(`AUTH PLAIN ${b64}`) !== 235) return { replies, ok: false, lastCode: last };
    }
    if (await step(`MAIL FROM:<${opts.from}>`) !== 250) return { replies, ok: false, lastCode: last };
    let accepted = 0;
    for (const r of opts.to) if (await step(`RCPT TO:<${r}>`) === 250) accepted++;
    if (!accepted) return { replies, ok: false, lastCode: last };
    if (await step('DATA') !== 354) return { replies, ok: false, lastCode: last };
    const body = opts.data.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
    const ok = (await step(body + (body.endsWith('\r\n') ? '' : '\r\n') + '.')) === 250;
    await step('QUIT');
    return { replies, ok, lastCode: ok ? 250 : last };
  } finally {
    sock.destroy();
  }
}
