/**
 * One ManageSieve connection (RFC 5804) with Pigeonhole's response texts:
 * greeting capabilities, AUTHENTICATE PLAIN (initial response or a
 * continuation) through the AuthEngine, STARTTLS, then LISTSCRIPTS,
 * GETSCRIPT, PUTSCRIPT, SETACTIVE, DELETESCRIPT, RENAMESCRIPT, CHECKSCRIPT,
 * HAVESPACE, CAPABILITY, NOOP and LOGOUT. Scripts are checked by Sealmail's
 * Sieve compiler before they are stored, so a script Roundcube saves here
 * is one delivery can run. Protocol only: storage is ScriptStorage's job.
 */
import type { Duplex } from 'node:stream';
import { compileScript, SieveCompileError, SUPPORTED_EXTENSIONS } from '../sieve/compile.js';
import type { DovecotConfig } from '../config/settings.js';
import type { AuthEngine } from '../auth/engine.js';
import type { Fields } from '../auth/databases.js';
import { Logger } from '../log/logger.js';
import { failureDelayMs } from '../auth/penalty.js';
import { ScriptStorage, ScriptError } from './storage.js';

/** Longest literal accepted (a script); larger ones are refused, the connection closed. */
const MAX_LITERAL = 8 * 1024 * 1024;
const MAX_LINE = 65536;

export interface SessionDeps {
  config: DovecotConfig;
  auth: AuthEngine;
  /** userdb answer → home for the script storage */
  resolveHome(user: string, fields: Fields): string | undefined;
  tlsAvailable: boolean;
  secured: boolean;
  remoteIp?: string;
  localIp?: string;
  /** Replace the socket by a TLS one (STARTTLS); resolves with the new stream. */
  startTls?(): Promise<Duplex>;
}

type Token = { kind: 'atom'; v: string } | { kind: 'str'; v: Buffer };

function quote(s: string): string { return '"' + s.replace(/[\\"]/g, '\\$&') + '"'; }
function literal(b: Buffer): Buffer { return Buffer.concat([Buffer.from(`{${b.length}}\r\n`), b]); }

/** Parse one complete command from buf: tokens + bytes used, null if incomplete. Throws on garbage. */
export function parseCommand(buf: Buffer): { tokens: Token[]; used: number } | null {
  const tokens: Token[] = [];
  let i = 0;
  for (;;) {
    while (buf[i] === 0x20) i++;
    if (i >= buf.length) return null;
    const c = buf[i];
    if (c === 0x0d || c === 0x0a) {
      if (c === 0x0d) { if (i + 1 >= buf.length) return null; if (buf[i + 1] !== 0x0a) throw new Error('received by server'); i++; }
      return { tokens, used: i + 1 };
    }
    if (c === 0x22) {
      const out: number[] = [];
      i++;
      for (;;) {
        if (i >= buf.length) { if (i > MAX_LINE) throw new Error('Too long'); return null; }
        const d = buf[i];
        if (d === 0x5c) { if (i + 1 >= buf.length) return null; out.push(buf[i + 1]); i += 2; continue; }
        if (d === 0x22) { i++; break; }
        if (d === 0x0d || d === 0x0a) throw new Error('received by server');
        out.push(d); i++;
      }
      tokens.push({ kind: 'str', v: Buffer.from(out) });
      continue;
    }
    if (c === 0x7b) {
      const end = buf.indexOf(0x0a, i);
      if (end < 0) { if (buf.length - i > 32) throw new Error('received by server'); return null; }
      const m = /^\{(\d+)\+?\}\r?$/.exec(buf.subarray(i, end).toString('latin1'));
      if (!m) throw new Error('received by server');
      const n = Number(m[1]);
      if (n > MAX_LITERAL) throw new Error('literal too large');
      const start = end + 1;
      if (buf.length < start + n) return null;
      tokens.push({ kind: 'str', v: Buffer.from(buf.subarray(start, start + n)) });
      i = start + n;
      continue;
    }
    let j = i;
    while (j < buf.length && buf[j] !== 0x20 && buf[j] !== 0x0d && buf[j] !== 0x0a) j++;
    if (j >= buf.length) { if (j > MAX_LINE) throw new Error('Too long'); return null; }
    tokens.push({ kind: 'atom', v: buf.subarray(i, j).toString('latin1') });
    i = j;
  }
}

export class ManageSieveSession {
  private buf = Buffer.alloc(0);
  private user: string | null = null;
  private storage: ScriptStorage | null = null;
  private busy = false;
  private closed = false;
  private pendingAuth: boolean = false;
  private log = new Logger('managesieve-login');

  constructor(private stream: Duplex, private readonly deps: SessionDeps) {}

  start(): void {
    this.attach();
    this.write(this.capabilities(false) + `OK ${quote(this.deps.config.get('login_greeting') || 'Dovecot ready.')}\r\n`);
  }

  private attach(): void {
    this.stream.on('data', (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); void this.pump(); });
    this.stream.on('error', () => { this.closed = true; });
    this.stream.on('close', () => { this.closed = true; });
  }

  private write(s: string | Buffer): void { if (!this.closed) this.stream.write(s); }

  capabilities(authed: boolean): string {
    const cfg = this.deps.config;
    const impl = cfg.get('managesieve_implementation_string') || 'Dovecot (Debian) Pigeonhole';
    const sieve = cfg.get('managesieve_sieve_capability') || SUPPORTED_EXTENSIONS.join(' ');
    // Only PLAIN is implemented here (what Roundcube's managesieve plugin uses).
    const mechs = this.plaintextAllowed() ? ['PLAIN'] : [];
    const lines = [`"IMPLEMENTATION" ${quote(impl)}`, `"SIEVE" ${quote(sieve)}`];
    if (authed) lines.push(`"MAXREDIRECTS" ${quote(cfg.get('sieve_max_redirects') || '4')}`);
    else {
      lines.push(`"SASL" ${quote(mechs.join(' '))}`);
      if (this.deps.tlsAvailable && !this.deps.secured) lines.push('"STARTTLS"');
    }
    lines.push('"VERSION" "1.0"');
    return lines.map((l) => l + '\r\n').join('');
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.closed) {
        let parsed;
        try { parsed = parseCommand(this.buf); } catch (e) {
          this.write(`NO "Error in MANAGESIEVE command ${(e as Error).message}."\r\n`);
          const nl = this.buf.indexOf(0x0a);
          this.buf = nl < 0 ? Buffer.alloc(0) : this.buf.subarray(nl + 1);
          if ((e as Error).message !== 'received by server') { this.write('BYE "Too much garbage."\r\n'); this.stream.end(); this.closed = true; }
          continue;
        }
        if (!parsed) break;
        this.buf = this.buf.subarray(parsed.used);
        await this.handle(parsed.tokens);
      }
    } finally { this.busy = false; }
  }

  private async handle(tokens: Token[]): Promise<void> {
    if (this.pendingAuth) { this.pendingAuth = false; return this.finishAuth(tokens[0]?.kind === 'str' ? tokens[0].v.toString('latin1') : tokens[0]?.v.toString() ?? ''); }
    if (!tokens.length) return;
    const head = tokens[0];
    if (head.kind !== 'atom') { this.write('NO "Error in MANAGESIEVE command received by server."\r\n'); return; }
    const cmd = head.v.toUpperCase();
    const args = tokens.slice(1);
    const bad = (msg: string) => this.write(`NO "Error in MANAGESIEVE command ${cmd}: ${msg}."\r\n`);
    const strArgs = (n: number, max = n): string[] | null => {
      if (args.length < n) { bad('Missing arguments'); return null; }
      if (args.length > max) { bad('Too many command arguments'); return null; }
      if (args.some((a) => a.kind !== 'str')) { bad('Invalid arguments'); return null; }
      return args.map((a) => (a.v as Buffer).toString('utf8'));
    };
    // Commands in any state
    switch (cmd) {
      case 'LOGOUT': this.write('OK "Logout completed."\r\n'); this.stream.end(); this.closed = true; return;
      case 'NOOP': {
        const a = strArgs(0, 1); if (!a) return;
        this.write(a.length ? `OK (TAG ${quote(a[0])}) "Done"\r\n` : 'OK "NOOP Completed"\r\n');
        return;
      }
      case 'CAPABILITY': this.write(this.capabilities(this.user !== null) + 'OK "Capability completed."\r\n'); return;
    }
    if (this.user === null) {
      switch (cmd) {
        case 'STARTTLS': {
          if (this.deps.secured) { this.write('NO "TLS is already active."\r\n'); return; }
          if (!this.deps.tlsAvailable || !this.deps.startTls) { bad('Unknown command'); return; }
          this.write('OK "Begin TLS negotiation now."\r\n');
          this.stream.removeAllListeners('data');
          this.stream = await this.deps.startTls();
          this.deps.secured = true;
          this.attach();
          this.write(this.capabilities(false) + 'OK "TLS negotiation successful."\r\n');
          return;
        }
        case 'AUTHENTICATE': {
          const a = strArgs(1, 2); if (!a) return;
          if (a[0].toUpperCase() !== 'PLAIN') { this.write('NO "Unsupported authentication mechanism."\r\n'); return; }
          if (!this.plaintextAllowed()) { this.write('NO "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."\r\n'); return; }
          if (a.length === 2) return this.finishAuth(a[1]);
          this.pendingAuth = true;
          this.write('""\r\n');
          return;
        }
        default:
          // Pigeonhole's login process knows no other command; its error text has no command name.
          this.write('NO "Error in MANAGESIEVE command received by server."\r\n');
          return;
      }
    }
    const st = this.storage!;
    try {
      switch (cmd) {
        case 'LISTSCRIPTS': {
          if (!strArgs(0)) return;
          const l = await st.list();
          this.write(l.map((s) => quote(s.name) + (s.active ? ' ACTIVE' : '') + '\r\n').join('') + 'OK "Listscripts completed."\r\n');
          return;
        }
        case 'GETSCRIPT': {
          const a = strArgs(1); if (!a) return;
          const data = await st.get(a[0]);
          this.write(Buffer.concat([literal(data), Buffer.from('\r\nOK "Getscript completed."\r\n')]));
          return;
        }
        case 'PUTSCRIPT': case 'CHECKSCRIPT': {
          const a = cmd === 'PUTSCRIPT' ? strArgs(2) : strArgs(1); if (!a) return;
          const name = cmd === 'PUTSCRIPT' ? a[0] : '';
          const data = (args[args.length - 1].v as Buffer);
          if (cmd === 'PUTSCRIPT' && !(await this.nameOk(name))) return;
          try { compileScript(data.toString('utf8'), name); } catch (e) {
            if (!(e instanceof SieveCompileError)) throw e;
            const pre = name ? `${name}: ` : '';
            const text = e.errors.join('\r\n') + `\r\n${pre}error: ${e.kind} failed.\r\n`;
            this.write(Buffer.concat([Buffer.from('NO '), literal(Buffer.from(text)), Buffer.from('\r\n')]));
            return;
          }
          if (cmd === 'CHECKSCRIPT') { this.write('OK "Script checked successfully."\r\n'); return; }
          await st.put(name, data);
          this.log.info(`sieve: stored script ${name}`);
          this.write('OK "PUTSCRIPT completed."\r\n');
          return;
        }
        case 'SETACTIVE': {
          const a = strArgs(1); if (!a) return;
          if (a[0] === '') {
            const had = await st.active();
            await st.setActive('');
            this.write(had ? 'OK "Active script is now deactivated."\r\n' : 'OK "No scripts currently active."\r\n');
            return;
          }
          // Activating a script re-checks it, as Pigeonhole does.
          compileScript((await st.get(a[0])).toString('utf8'), a[0]);
          await st.setActive(a[0]);
          this.write('OK "Setactive completed."\r\n');
          return;
        }
        case 'DELETESCRIPT': { const a = strArgs(1); if (!a) return; await st.delete(a[0]); this.write('OK "Deletescript completed."\r\n'); return; }
        case 'RENAMESCRIPT': { const a = strArgs(2); if (!a) return; if (!(await this.nameOk(a[1]))) return; await st.rename(a[0], a[1]); this.write('OK "Renamescript completed."\r\n'); return; }
        case 'HAVESPACE': {
          if (args.length !== 2 || args[0].kind !== 'str' || args[1].kind !== 'atom' || !/^\d+$/.test(args[1].v)) { bad(args.length < 2 ? 'Missing arguments' : 'Invalid arguments'); return; }
          if (!(await this.nameOk(args[0].v.toString('utf8')))) return;
          this.write('OK "Putscript would succeed."\r\n');
          return;
        }
        case 'AUTHENTICATE': case 'STARTTLS': bad('Unknown command'); return;
        default: bad('Unknown command'); return;
      }
    } catch (e) {
      if (e instanceof ScriptError) {
        this.write(e.code === 'INVALID' ? `NO ${quote(e.message)}\r\n` : `NO (${e.code}) ${quote(e.message)}\r\n`);
      } else if (e instanceof SieveCompileError) {
        this.write(Buffer.concat([Buffer.from('NO '), literal(Buffer.from(e.errors.join('\r\n') + '\r\n')), Buffer.from('\r\n')]));
      } else {
        Logger.forUser('managesieve', this.user!).error(`${cmd}: ${(e as Error).message}`);
        this.write('NO (TRYLATER) "Internal error occurred. Refer to server log for more information."\r\n');
      }
    }
  }

  /**
   * Dovecot's disable_plaintext_auth (and ssl = required): PLAIN only over TLS
   * or on a connection Dovecot counts as secure (loopback, or local IP = remote IP).
   */
  private plaintextAllowed(): boolean {
    const cfg = this.deps.config;
    const off = cfg.getBool('disable_plaintext_auth') || cfg.get('ssl') === 'required';
    if (!off || this.deps.secured) return true;
    const rip = this.deps.remoteIp ?? '';
    return rip === '' || rip === '::1' || rip.startsWith('127.') || rip === this.deps.localIp;
  }

  private async nameOk(name: string): Promise<boolean> {
    try { await this.storage!.exists(name); return true; } catch (e) {
      if (e instanceof ScriptError) { this.write(`NO ${quote(e.message)}\r\n`); return false; }
      throw e;
    }
  }

  private async finishAuth(b64: string): Promise<void> {
    if (b64 === '*') { this.write('NO "Authentication aborted by client."\r\n'); return; }
    const raw = Buffer.from(b64, 'base64');
    const parts = raw.toString('utf8').split('\0');
    if (parts.length !== 3 || !parts[1]) { this.write('NO "Authentication failed."\r\n'); return; }
    const [authz, login, password] = parts;
    const info = { service: 'sieve', rip: this.deps.remoteIp, lip: this.deps.localIp, mech: 'PLAIN', secured: this.deps.secured };
    const out = await this.deps.auth.authenticate(login, password, info);
    if (out.result !== 'ok' || (authz && authz !== login && authz !== out.user) || out.nologin) {
      await new Promise((r) => setTimeout(r, failureDelayMs(this.deps.config.getTime('auth_failure_delay'), out.nodelay)));
      this.write(out.result === 'tempfail' ? 'NO (TRYLATER) "Temporary authentication failure."\r\n' : 'NO "Authentication failed."\r\n');
      this.log.info(`Disconnected: auth failed (user=<${login}>, method=PLAIN, rip=${this.deps.remoteIp ?? ''})`);
      return;
    }
    const u = await this.deps.auth.lookupUser(out.user, info, out.userdbFields);
    const home = u.result === 'ok' ? this.deps.resolveHome(u.user, u.fields) : undefined;
    if (!home) {
      this.write('NO (TRYLATER) "Temporary authentication failure."\r\n');
      Logger.forUser('managesieve', out.user).error('user has no home directory: cannot store Sieve scripts');
      return;
    }
    this.user = u.user;
    const plugin = this.deps.config.plugin({ protocol: 'sieve' });
    this.storage = new ScriptStorage(plugin.sieve ?? '', { username: u.user, home, fields: u.fields });
    Logger.forUser('managesieve-login', u.user).info(`Login: user=<${u.user}>, method=PLAIN, rip=${this.deps.remoteIp ?? ''}`);
    this.write('OK "Logged in."\r\n');
  }
}
