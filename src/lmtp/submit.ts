/**
 * Sending mail out of a delivery (Sieve redirect and vacation), as Dovecot's
 * lib-smtp smtp-submit does it: through `submission_host` (host[:port],
 * SMTP, port 25 by default) when it is set, otherwise by running
 * `sendmail_path` with `-i -f <sender> -- <rcpt>` and the message on stdin
 * (sender `<>` for a null return path; the exit status decides). Both give
 * up after `submission_timeout`. Message bytes go out with CRLF line ends.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { hostname } from 'node:os';
import type { DovecotConfig } from '../config/settings.js';
import { recipientSummary } from '../sieve/notify.js';

export type SubmitResult = { ok: true } | { ok: false; temp: boolean; error: string };

const crlf = (b: Buffer): Buffer => Buffer.from(b.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');

export async function submitMail(config: DovecotConfig, mailFrom: string, rcpts: string[], message: Buffer, protocol = 'lmtp'): Promise<SubmitResult> {
  // Last defence: an address is one SMTP argument; CR, LF or NUL in it would start another command (or sendmail argument).
  // eslint-disable-next-line no-control-regex
  const bad = [mailFrom, ...rcpts].find((a) => /[\r\n\0]/.test(a));
  if (bad !== undefined) return { ok: false, temp: false, error: `invalid address ${JSON.stringify(bad)}: contains CR, LF or NUL` };
  const timeoutMs = config.getTime('submission_timeout', { protocol }) || 30_000;
  const host = config.get('submission_host', { protocol });
  if (host) return smtpSubmit(host, config.get('hostname', { protocol }) || hostname(), mailFrom, rcpts, crlf(message), timeoutMs);
  return sendmailSubmit(config.get('sendmail_path', { protocol }) || '/usr/sbin/sendmail', mailFrom, rcpts, crlf(message), timeoutMs);
}

function sendmailSubmit(path: string, mailFrom: string, rcpts: string[], message: Buffer, timeoutMs: number): Promise<SubmitResult> {
  const [cmd, ...pre] = path.split(/\s+/).filter(Boolean);
  const args = [...pre, '-i', '-f', mailFrom || '<>', '--', ...rcpts];
  return new Promise((resolve) => {
    let err = '';
    let done = false;
    const finish = (r: SubmitResult) => { if (!done) { done = true; clearTimeout(timer); resolve(r); } };
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    const timer = setTimeout(() => { child.kill('SIGKILL'); finish({ ok: false, temp: true, error: `${cmd} timed out` }); }, timeoutMs);
    child.stderr!.on('data', (d) => { err = (err + d).slice(-500); });
    child.on('error', (e) => finish({ ok: false, temp: true, error: `${cmd}: ${e.message}` }));
    child.on('exit', (code, sig) => {
      if (code === 0) finish({ ok: true });
      // sysexits: EX_TEMPFAIL (75) is temporary, other failures permanent
      else finish({ ok: false, temp: code === 75 || code === null, error: `${cmd} exited with ${sig ?? `status ${code}`}${err ? `: ${err.trim()}` : ''}` });
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(message);
  });
}

function smtpSubmit(hostPort: string, helo: string, mailFrom: string, rcpts: string[], message: Buffer, timeoutMs: number): Promise<SubmitResult> {
  const m = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(hostPort)!;
  const host = m[1];
  const port = Number(m[2] ?? 25);
  return new Promise((resolve) => {
    const sock = net.connect(port, host);
    let buf = '';
    let step = 0;
    let done = false;
    const finish = (r: SubmitResult) => { if (done) return; done = true; clearTimeout(timer); sock.destroy(); resolve(r); };
    const timer = setTimeout(() => finish({ ok: false, temp: true, error: `${hostPort}: timed out` }), timeoutMs);
    const body = Buffer.concat([Buffer.from(message.toString('latin1').replace(/^\./gm, '..'), 'latin1'), message.subarray(-2).equals(Buffer.from('\r\n')) ? Buffer.alloc(0) : Buffer.from('\r\n'), Buffer.from('.\r\n')]);
    const commands = [`EHLO ${helo}`, `MAIL FROM:<${mailFrom}>`, ...rcpts.map((r) => `RCPT TO:<${r}>`), 'DATA'];
    sock.on('error', (e) => finish({ ok: false, temp: true, error: `${hostPort}: ${e.message}` }));
    sock.on('close', () => finish({ ok: false, temp: true, error: `${hostPort}: connection closed` }));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        if (/^\d{3}-/.test(line)) continue;
        const code = Number(line.slice(0, 3));
        const want = step === 0 ? 220 : step === commands.length ? 354 : 250;
        if (code !== want) { finish({ ok: false, temp: code >= 400 && code < 500, error: `${hostPort}: ${line}` }); return; }
        if (step < commands.length) sock.write(commands[step] + '\r\n');
        else if (step === commands.length) sock.write(body);
        else { done = true; clearTimeout(timer); sock.end('QUIT\r\n'); resolve({ ok: true }); return; }
        step++;
      }
    });
  });
}

interface Logger { info(m: string): void; error(m: string): void }

/**
 * Carries out a delivery's Sieve redirect, vacation and notify (mailto)
 * actions as Pigeonhole does (a notification goes to its recipients with
 * the sender deliver.ts chose): a redirect goes out with the original envelope sender, the message
 * without Return-Path and with `X-Sieve` / `X-Sieve-Redirected-From`
 * prepended; a vacation reply goes out with sender <>. Returns false when a
 * redirect failed (the caller then keeps the message, as Pigeonhole's
 * implicit keep after a failed action).
 */
export async function sendSieveMail(config: DovecotConfig, o: { user: string; mailFrom: string; message: Buffer; msgid: string; log: Logger },
  actions: { type: string; address?: string; reply?: Buffer; mailFrom?: string; rcpts?: string[]; message?: Buffer }[]): Promise<boolean> {
  let ok = true;
  for (const a of actions) {
    if (a.type === 'notify' && a.reply && a.rcpts?.length) {
      const all = recipientSummary(a.rcpts);
      const r = await submitMail(config, a.mailFrom ?? '', a.rcpts, a.reply);
      if (r.ok) o.log.info(`sieve: msgid=${o.msgid}: notify action: sent mail notification to ${all}`);
      else o.log.error(`sieve: msgid=${o.msgid}: notify action: failed to send mail notification to ${all}: ${r.error} (${r.temp ? 'temporary' : 'permanent'} failure)`);
      continue;
    }
    if (!a.address) continue;
    if (a.type === 'redirect') {
      // (a redirect of a message editheader changed brings its own copy)
      const text = (a.message ?? o.message).toString('latin1');
      // Return-Path out of the header (where editheader's addheader may have put fields above it), the body untouched
      const end = text.indexOf('\n\n') + 1 || text.length;
      const withoutReturnPath = text.slice(0, end).replace(/^Return-Path:[^\n]*\n(?:[ \t][^\n]*\n)*/gim, '') + text.slice(end);
      const out = Buffer.concat([Buffer.from(`X-Sieve: Sealmail Sieve\nX-Sieve-Redirected-From: ${o.user}\n`), Buffer.from(withoutReturnPath, 'latin1')]);
      const r = await submitMail(config, o.mailFrom, [a.address], out);
      if (r.ok) o.log.info(`sieve: msgid=${o.msgid}: redirect action: forwarded to <${a.address}>`);
      else { o.log.error(`sieve: msgid=${o.msgid}: redirect action: failed to redirect message to <${a.address}>: ${r.error}`); ok = false; }
    } else if (a.type === 'vacation' && a.reply) {
      const r = await submitMail(config, '', [a.address], a.reply);
      if (r.ok) o.log.info(`sieve: msgid=${o.msgid}: vacation action: sent vacation response to <${a.address}>`);
      else o.log.error(`sieve: msgid=${o.msgid}: vacation action: failed to send vacation response to <${a.address}>: ${r.error}`);
    }
  }
  return ok;
}
