/**
 * A poppassd service for webmail password changes (Roundcube's stock
 * `password` plugin, driver `poppassd`; Sealmail-only, Dovecot has none).
 * Enabled by `plugin { sealmail_poppassd_listen = 127.0.0.1:106 }` (or a
 * unix socket path): in `plugin {}` because Dovecot ignores unknown keys
 * there, so the real Dovecot still starts on the same tree. Without the
 * setting nothing listens.
 *
 * The line protocol as Roundcube's plugins/password/drivers/poppassd.php
 * speaks it (poppassd 1.x): greeting `200 …`; `user NAME` → `200`;
 * `pass OLD` → `200`; `newpass NEW` → `200` on success, `500 text` on
 * failure (Roundcube shows the text); `quit` → `200 Bye.`.
 *
 * The change itself is `sealadm password change` (src/cli/commands/password.ts),
 * run as a child with the passwords NUL-separated on its stdin (never argv):
 * the same crash-safe order (old password and keys checked, the new one
 * checked storable by the passdb scheme, keys staged, SQL hash updated,
 * staged keys promoted), with the master's privileges (root in the root-master
 * model). A wrong old password costs the auth penalty: Dovecot's anvil
 * delay (penalty.ts) before the next attempt from the same client address
 * for the same user (a webmail sends every user from one address, so one
 * user's typos must not slow everyone's) plus auth_failure_delay before the
 * answer. Passwords are never logged; the log says who changed and why a
 * change failed.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DovecotConfig } from '../config/settings.js';
import { AuthPenalty, failureDelayMs } from '../auth/penalty.js';
import type { Logger } from '../log/logger.js';

export const POPPASSD_SETTING = 'sealmail_poppassd_listen';
const DEFAULT_PORT = 106;
/** poppassd lines are short; a longer one ends the connection (nothing was changed). */
const MAX_LINE = 4096;
/** An idle connection is closed after this. */
const IDLE_MS = 60_000;
/** sealadm's exit codes (command.ts): wrong old password, refused input. */
const EX_NOPERM = 77;
const EX_DATAERR = 65;

export type PoppassdAddress = { path: string } | { host: string; port: number };

/** `host:port`, `[v6]:port`, `host` (port 106) or an absolute unix socket path. */
export function parsePoppassdListen(value: string): PoppassdAddress {
  const v = value.trim();
  if (v.startsWith('/')) return { path: v };
  const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(v) ?? /^([^:[\]\s]+)(?::(\d+))?$/.exec(v);
  if (!m) throw new Error(`plugin { ${POPPASSD_SETTING} = ${value} }: expected host:port, [ipv6]:port or a unix socket path`);
  const port = m[2] === undefined ? DEFAULT_PORT : Number(m[2]);
  if (!(port > 0 && port < 65536)) throw new Error(`plugin { ${POPPASSD_SETTING} = ${value} }: bad port`);
  return { host: m[1], port };
}

/** What runs one change: resolves to sealadm's exit code and its error text. */
export type ChangeRunner = (user: string, old: string, next: string) => Promise<{ code: number; message: string }>;

/** The real runner: `sealadm -c CONF password change -u USER`, passwords on stdin. */
export function sealadmRunner(configPath: string): ChangeRunner {
  const sealadm = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'sealadm.js');
  return (user, old, next) => new Promise((resolve) => {
    const child = spawn(process.execPath, [sealadm, '-c', configPath, 'password', 'change', '-u', user], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    child.stdout.resume();
    child.stderr.setEncoding('utf8').on('data', (d: string) => { if (err.length < 4096) err += d; });
    child.on('error', (e) => resolve({ code: -1, message: e.message }));
    child.on('close', (code, signal) => resolve({ code: code ?? -1, message: (err.trim().split('\n').pop() ?? '').replace(/^Error: /, '') || (signal ? `killed by ${signal}` : '') }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(`${old}\0${next}\0${next}\0`);
  });
}

interface Conn { user?: string; old?: string; busy: boolean }

export class PoppassdService {
  readonly penalty = new AuthPenalty();
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly config: DovecotConfig, private readonly run: ChangeRunner, private readonly log: Logger) {}

  async listen(addr: PoppassdAddress): Promise<string> {
    const server = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if ('path' in addr) { rmSync(addr.path, { force: true }); server.listen(addr.path, () => resolve()); }
      else server.listen(addr.port, addr.host, () => resolve());
    }).catch((e: Error) => { throw new Error(`poppassd: listen(${'path' in addr ? addr.path : `${addr.host}, ${addr.port}`}) failed: ${e.message}`); });
    // a unix socket: whoever may connect may try (the old password is still needed), as Dovecot's login sockets
    if ('path' in addr) { chmodSync(addr.path, 0o666); process.once('exit', () => rmSync(addr.path, { force: true })); }
    this.server = server;
    const a = server.address();
    return typeof a === 'string' ? a : `${a!.address}:${a!.port}`;
  }

  /** The bound TCP port (tests listen on port 0). */
  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  close(): void {
    this.server?.close();
    for (const s of this.sockets) s.destroy();
  }

  private accept(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
    s.setTimeout(IDLE_MS, () => s.destroy());
    const rip = s.remoteAddress ?? 'local';
    const c: Conn = { busy: false };
    let buf = Buffer.alloc(0);
    const lines: string[] = [];
    const pump = async () => {
      if (c.busy) return;
      c.busy = true;
      try {
        while (lines.length && !s.destroyed) await this.command(s, c, rip, lines.shift()!);
      } finally { c.busy = false; }
    };
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      let nl: number;
      while ((nl = buf.indexOf(10)) >= 0) {
        lines.push(buf.subarray(0, nl).toString('utf8').replace(/\r$/, ''));
        buf = buf.subarray(nl + 1);
      }
      if (buf.length > MAX_LINE) { s.removeAllListeners('data'); lines.length = 0; s.end('500 Line too long.\r\n'); return; }
      void pump().catch((e: Error) => { this.log.error(`poppassd: ${e.message}`); s.destroy(); });
    });
    s.write('200 Sealmail poppassd ready, who are you?\r\n');
  }

  private async command(s: Socket, c: Conn, rip: string, line: string): Promise<void> {
    const sp = line.indexOf(' ');
    const verb = (sp < 0 ? line : line.slice(0, sp)).toLowerCase();
    const arg = sp < 0 ? '' : line.slice(sp + 1);
    if (verb === 'quit') { s.end('200 Bye.\r\n'); return; }
    if (verb === 'user') {
      if (!arg) { s.write('500 Username required.\r\n'); return; }
      c.user = arg; c.old = undefined;
      s.write('200 Your password please.\r\n');
      return;
    }
    if (verb === 'pass') {
      if (c.user === undefined) { s.write('500 Username first.\r\n'); return; }
      c.old = arg;
      s.write('200 Your new password please.\r\n');
      return;
    }
    if (verb === 'newpass') {
      if (c.user === undefined || c.old === undefined) { s.write('500 Username and old password first.\r\n'); return; }
      const user = c.user;
      const who = `poppassd(${user.replace(/[\x00-\x1f\x7f]/g, '?')})<${rip}>`; // str_sanitize()d, as every log prefix
      const key = `${rip} ${user}`;
      const wait = this.penalty.delayBefore(key);
      if (wait) await new Promise((r) => setTimeout(r, wait));
      // one change per user at a time (two webmail tabs): the second starts from what the first left
      const prev = this.running.get(user) ?? Promise.resolve();
      const mine = prev.then(() => this.run(user, c.old!, arg));
      const settled = mine.then(() => undefined, () => undefined);
      this.running.set(user, settled);
      s.setTimeout(0); // the change may take a while on a loaded machine: not idleness
      let r: { code: number; message: string };
      try { r = await mine; } finally {
        if (this.running.get(user) === settled) this.running.delete(user);
        s.setTimeout(IDLE_MS);
      }
      c.old = undefined;
      if (r.code === 0) {
        this.penalty.succeeded(key);
        this.log.info(`${who}: password changed`);
        s.write('200 Password changed, thank-you.\r\n');
      } else if (r.code === EX_NOPERM) {
        this.penalty.failed(key);
        this.log.info(`${who}: password change refused: old password wrong`);
        await new Promise((res) => setTimeout(res, failureDelayMs(this.config.getTime('auth_failure_delay'), false)));
        s.write('500 Old password is incorrect.\r\n');
      } else {
        this.log.warn(`${who}: password change failed: ${r.message}`);
        s.write(r.code === EX_DATAERR ? `500 ${oneLine(r.message)}\r\n` : '500 Password change failed, try again later.\r\n');
      }
      return;
    }
    s.write('500 Unknown command.\r\n');
  }
}

const oneLine = (t: string) => t.replace(/[\r\n]+/g, ' ').slice(0, 300);

/** Open the service when the tree enables it (as root, before privileges are dropped). */
export async function openPoppassd(config: DovecotConfig, configPath: string, log: Logger): Promise<PoppassdService | null> {
  const value = config.plugin()[POPPASSD_SETTING];
  if (!value) return null;
  const svc = new PoppassdService(config, sealadmRunner(configPath), log);
  const where = await svc.listen(parsePoppassdListen(value));
  log.info(`listening on ${where} (poppassd)`);
  return svc;
}
