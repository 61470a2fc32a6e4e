/**
 * Step-by-step transcripts of a line protocol (LMTP, the auth client
 * protocol) for differential tests: each step sends bytes and waits for a
 * given number of final reply lines (a `NNN ` line for SMTP-like protocols,
 * any line otherwise), the connection closing, or a short timeout — so the
 * same script gives comparable transcripts from Dovecot and Sealmail.
 */
import net from 'node:net';

export interface Step {
  send: string | Buffer;
  /** Final reply lines to wait for; 0 waits `quietMs` for anything unexpected. Default 1. */
  replies?: number;
  /** Pause before sending (ms), e.g. to let a server notice a cut connection. */
  pauseMs?: number;
  /** Close our side after sending (a client cut mid-way). */
  end?: boolean;
}

export type Target = { path: string } | { port: number };

export interface TranscriptOptions {
  /** Is this line a final one (counted against `replies`)? Default: SMTP's `NNN ` form. */
  isFinal?: (line: string) => boolean;
  /** Lines of the greeting to wait for before the first step. Default 1. */
  greeting?: number;
  timeoutMs?: number;
  quietMs?: number;
}

const smtpFinal = (l: string) => /^\d{3}( |$)/.test(l);

const show = (b: string | Buffer): string => {
  const s = typeof b === 'string' ? b : b.toString('latin1');
  const shown = s.length > 200 ? `${s.slice(0, 60)}…(${s.length} bytes)…${s.slice(-20)}` : s;
  return JSON.stringify(shown);
};

export async function transcript(target: Target, steps: Step[], opts: TranscriptOptions = {}): Promise<string[]> {
  const isFinal = opts.isFinal ?? smtpFinal;
  const timeoutMs = opts.timeoutMs ?? 3000;
  const quietMs = opts.quietMs ?? 150;
  const sock = 'path' in target ? net.connect(target.path) : net.connect(target.port, '127.0.0.1');
  const out: string[] = [];
  let pending = '';
  let finals = 0;
  let closed = false;
  let wake: (() => void) | null = null;
  sock.on('data', (d: Buffer) => {
    pending += d.toString('latin1');
    let i;
    while ((i = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, i).replace(/\r$/, '');
      pending = pending.slice(i + 1);
      out.push(`S: ${line}`);
      if (isFinal(line)) finals++;
    }
    wake?.();
  });
  sock.on('error', () => undefined);
  sock.on('close', () => { closed = true; wake?.(); });
  const waitFor = async (n: number): Promise<void> => {
    const end = Date.now() + (n ? timeoutMs : quietMs);
    while (!closed && (n === 0 || finals < n) && Date.now() < end) {
      await new Promise<void>((r) => { wake = r; setTimeout(r, Math.max(1, Math.min(50, end - Date.now()))); });
      wake = null;
    }
    if (n && finals < n && !closed) out.push('[no reply]');
    finals = 0;
  };
  await waitFor(opts.greeting ?? 1);
  for (const s of steps) {
    if (closed) break;
    if (s.pauseMs) await new Promise((r) => setTimeout(r, s.pauseMs));
    out.push(`C: ${show(s.send)}`);
    sock.write(s.send);
    if (s.end) { sock.end(); await waitFor(0); break; }
    await waitFor(s.replies ?? 1);
  }
  if (closed) out.push('[closed]');
  sock.destroy();
  return out;
}
