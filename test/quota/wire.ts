/**
 * Small lock-step LMTP and IMAP clients for the quota differential tests:
 * every command waits for its complete reply, so Dovecot's and Sealmail's
 * transcripts line up.
 */
import { connect, type Socket } from 'node:net';

class LineConn {
  private buf = '';
  private waiter: (() => void) | null = null;
  constructor(readonly s: Socket) {
    s.on('data', (d: Buffer) => { this.buf += d.toString('latin1'); this.waiter?.(); });
  }
  static open(port: number): Promise<LineConn> {
    return new Promise((res, rej) => { const s = connect(port, '127.0.0.1', () => res(new LineConn(s))); s.on('error', rej); });
  }
  /** Wait until `done(buffer)` gives an end offset; return and consume that much. */
  async until(done: (b: string) => number): Promise<string> {
    const end = Date.now() + 15_000;
    for (;;) {
      const n = done(this.buf);
      if (n >= 0) { const out = this.buf.slice(0, n); this.buf = this.buf.slice(n); return out; }
      if (Date.now() > end) throw new Error(`no complete answer: ${this.buf.slice(-300)}`);
      await new Promise<void>((r) => { this.waiter = r; setTimeout(r, 200).unref(); });
      this.waiter = null;
    }
  }
  write(s: string | Buffer): void { this.s.write(s); }
  close(): void { this.s.destroy(); }
}

/** One SMTP/LMTP reply (multi-line until `NNN `). */
const smtpReply = (b: string): number => {
  const m = /(^|\r\n)\d{3} [^\r\n]*\r\n/.exec(b);
  return m ? m.index + m[0].length : -1;
};

/** LHLO, MAIL, RCPTs, DATA: the replies in order (one per accepted recipient after the dot). */
export async function lmtpSend(port: number, rcpts: string[], message: string): Promise<string[]> {
  const c = await LineConn.open(port);
  const out: string[] = [];
  const cmd = async (line: string) => { c.write(line + '\r\n'); const r = (await c.until(smtpReply)).trimEnd().split('\r\n').pop()!; out.push(r); return r; };
  await c.until(smtpReply);
  await cmd('LHLO client');
  await cmd('MAIL FROM:<sender@example.com>');
  let ok = 0;
  for (const r of rcpts) if ((await cmd(`RCPT TO:<${r}>`)).startsWith('250')) ok++;
  if (ok) {
    if ((await cmd('DATA')).startsWith('354')) {
      c.write(message.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..') + '.\r\n');
      for (let i = 0; i < ok; i++) out.push((await c.until(smtpReply)).trimEnd());
    }
  }
  await cmd('QUIT');
  c.close();
  return out;
}

/** IMAP lines in lock-step after LOGIN; returns the transcript (timings and ids normalised). */
export async function imapScript(port: number, user: string, lines: string[]): Promise<string[]> {
  const c = await LineConn.open(port);
  const lineEnd = (b: string) => { const i = b.indexOf('\r\n'); return i < 0 ? -1 : i + 2; };
  await c.until(lineEnd);
  let out = '';
  for (const l of [`L0 LOGIN ${user} pass`, ...lines]) {
    const tag = l.split(' ')[0];
    const tagged = new RegExp(`(^|\\r\\n)${tag} (OK|NO|BAD) [^\\r\\n]*\\r\\n`);
    // a synchronising literal: send the rest only after the server's `+ `
    const sync = /\{\d+\}\r\n/.exec(l);
    if (sync) {
      c.write(l.slice(0, sync.index + sync[0].length));
      const got = await c.until((b) => { const m = /(^|\r\n)\+ [^\r\n]*\r\n/.exec(b) ?? tagged.exec(b); return m ? m.index + m[0].length : -1; });
      out += got;
      if (tagged.test(got)) continue;
      c.write(l.slice(sync.index + sync[0].length) + '\r\n');
    } else c.write(l + '\r\n');
    out += await c.until((b) => { const m = tagged.exec(b); return m ? m.index + m[0].length : -1; });
  }
  c.close();
  return out.split('\r\n')
    .filter((l) => l && !/^L0 /.test(l) && !/^\* CAPABILITY /.test(l))
    .map((l) => l.replace(/ \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\./, '.').replace(/\[UIDVALIDITY \d+\]/, '[UIDVALIDITY X]').replace(/\[(COPYUID|APPENDUID) \d+ [^\]]*\]/, '[$1 X]'));
}

/** A message of about `size` bytes (LF line ends). */
export function message(size: number, subject = 'quota test'): string {
  const head = `From: sender@example.com\nSubject: ${subject}\nMessage-ID: <${subject.replace(/\W/g, '')}@example.com>\n\n`;
  let body = '';
  while (head.length + body.length < size) body += 'x'.repeat(Math.min(71, Math.max(1, size - head.length - body.length - 1))) + '\n';
  return head + body;
}
