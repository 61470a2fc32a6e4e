/**
 * The client side of Dovecot's auth client protocol (auth-client-protocol,
 * served by authsock/server.ts), as imap-login speaks it to the auth
 * process: VERSION 1.2 + CPID handshake, then one `AUTH id PLAIN
 * service=… resp=…` per login with the connection's rip/lip/secured
 * (and `valid-client-cert` when the client's TLS certificate verified), answered
 * by OK (the canonical user name) or FAIL (`temp` for a temporary failure,
 * `reason=` for a text to show). The password travels only on this socket.
 */
import { connect, type Socket } from 'node:net';
import type { Fields } from '../auth/databases.js';

/** `ref`: the auth process's CUID and the request id, for the userdb lookup after the login (Dovecot's auth master REQUEST). */
/** `fields`: the reply's other fields (a proxied login's `proxy`/`host`/`pass`…, a referral's `nologin`/`host`). */
export type AuthReply = { ok: true; user: string; ref: string; fields: Fields } | { ok: false; temp: boolean; reason?: string; fields: Fields };

const escape = (v: string) => v.replace(/[\x01\t\n]/g, (c) => (c === '\t' ? '\x01t' : c === '\n' ? '\x01n' : '\x011'));
const unescape = (v: string) => v.replace(/\x01(.)/g, (_m, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === '1' ? '\x01' : c));

export class AuthClient {
  private sock: Socket | null = null;
  private buf = '';
  private nextId = 0;
  /** The CUID the auth process gave this connection. */
  private cuid = '';
  private readonly waiting = new Map<string, (r: AuthReply) => void>();

  constructor(private readonly path: string) {}

  private connection(): Socket {
    if (this.sock && !this.sock.destroyed) return this.sock;
    const s = connect(this.path);
    s.setEncoding('utf8');
    s.write(`VERSION\t1\t2\nCPID\t${process.pid}\n`);
    s.on('data', (d: string) => this.onData(d));
    const gone = () => {
      if (this.sock === s) this.sock = null;
      // the auth process died (it is restarted): the logins in flight fail temporarily, as with Dovecot
      for (const w of this.waiting.values()) w({ ok: false, temp: true, fields: [] });
      this.waiting.clear();
    };
    s.on('close', gone);
    s.on('error', () => s.destroy());
    this.sock = s;
    return s;
  }

  private onData(d: string): void {
    this.buf += d;
    let nl;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const f = this.buf.slice(0, nl).split('\t');
      this.buf = this.buf.slice(nl + 1);
      if (f[0] === 'CUID') { this.cuid = f[1] ?? ''; continue; }
      if (f[0] !== 'OK' && f[0] !== 'FAIL') continue; // the handshake lines, and CONT (never asked for: PLAIN has its response)
      const done = this.waiting.get(f[1]);
      if (!done) continue;
      this.waiting.delete(f[1]);
      const list: Fields = f.slice(2).filter(Boolean).map((p) => { const eq = p.indexOf('='); return eq < 0 ? [p, ''] : [p.slice(0, eq), unescape(p.slice(eq + 1))]; });
      const fields = new Map(list);
      const rest = list.filter(([k]) => k !== 'user' && k !== 'temp' && k !== 'reason' && k !== 'original_user' && k !== 'auth_user');
      if (f[0] === 'OK') done({ ok: true, user: fields.get('user') ?? '', ref: `${this.cuid}:${f[1]}`, fields: rest });
      else done({ ok: false, temp: fields.has('temp'), reason: fields.get('reason'), fields: rest });
    }
  }

  /** AUTH PLAIN for `user`/`password` (and `loginUser` for a master-user login). */
  authenticate(user: string, password: string, info: { service: string; rip: string; lip: string; lport?: number; secured: boolean; loginUser?: string; session?: string; validClientCert?: boolean }): Promise<AuthReply> {
    const id = String(++this.nextId);
    const resp = Buffer.from(`${info.loginUser ?? ''}\0${user}\0${password}`).toString('base64');
    const params = [`service=${escape(info.service)}`, `rip=${escape(info.rip)}`, `lip=${escape(info.lip)}`, ...(info.lport ? [`lport=${info.lport}`] : []), ...(info.secured ? ['secured'] : []), ...(info.validClientCert ? ['valid-client-cert'] : []), ...(info.session ? [`session=${escape(info.session)}`] : []), `resp=${resp}`];
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.connection().write(`AUTH\t${id}\tPLAIN\t${params.join('\t')}\n`);
    });
  }

  close(): void { this.sock?.destroy(); }
}
