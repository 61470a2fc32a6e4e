/**
 * Dovecot's auth master protocol as its auth process speaks it on the
 * `auth-userdb` socket (auth-master-connection.c, a userdb-only
 * connection): what Dovecot's own dovecot-lda, lmtp and doveadm use to look
 * a user up. ISPmail's quota-warning.sh delivers its notice with
 * dovecot-lda, so with Sealmail in Dovecot's place the socket must still
 * answer (spec ispmail-integration.md §2).
 *
 * Server: `VERSION\t1\t1`, `SPID\t<pid>`. Client: `VERSION\t1\t<minor>` (major
 * must be 1), then
 *   USER\t<id>\t<user>\tservice=…  → USER\t<id>\t<user>\tkey=value… | NOTFOUND\t<id> | FAIL\t<id>
 *   PASS\t<id>\t<user>\tservice=…  → PASS\t<id>\tuser=<user>\tkey=value… (passdb fields, no password) | NOTFOUND | FAIL
 *   LIST\t<id>[\tuser=<mask>]      → LIST\t<id>\t<user>… then DONE\t<id>\t (DONE\t<id>\tfail on failure; the mask is not applied)
 * Arguments are tab-escaped both ways; a request without service, a broken
 * id, an unknown command or a line over 1024 bytes drops the connection, as
 * Dovecot does. Answers come from the same passdb/userdb chain (AuthEngine)
 * Sealmail's own lookups use.
 */
import type { Duplex } from 'node:stream';
import type { AuthEngine, RequestInfo } from '../auth/engine.js';
import type { Fields } from '../auth/databases.js';
import type { Logger } from '../log/logger.js';
import { faultText, guarded } from '../util/fault.js';

/** MAX_INBUF_SIZE of auth-master-connection.c. */
const MAX_LINE = 1024;
const unescape = (v: string) => v.replace(/\x01(.)/g, (_m, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c === '1' ? '\x01' : c));
const escape = (v: string) => v.replace(/[\x01\t\r\n]/g, (c) => (c === '\t' ? '\x01t' : c === '\n' ? '\x01n' : c === '\r' ? '\x01r' : '\x011'));

/** auth_fields_append: `\tkey=value` per field, values tab-escaped. */
const fieldsText = (fields: Fields) => fields.map(([k, v]) => `\t${k}=${escape(v)}`).join('');

export class AuthUserdbSession {
  private buf = '';
  private versionOk = false;
  private closed = false;
  private listing = false;
  /** Replies in request order: a later fast lookup must not overtake an earlier slow one on the wire. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly sock: Duplex, private readonly engine: AuthEngine, private readonly log: Logger) {
    sock.write(`VERSION\t1\t1\nSPID\t${process.pid}\n`);
    // the connection's fault boundary: an exception drops this client, never the process
    sock.on('data', guarded((e) => this.drop(`Internal error: ${faultText(e)}`), (d: Buffer) => this.onData(d.toString('utf8'))));
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => { this.closed = true; });
  }

  private drop(why: string): void {
    this.log.error(`auth-master client: ${why}`);
    this.closed = true;
    this.sock.destroy();
  }

  private send(text: string): void { if (!this.closed) this.sock.write(text); }

  private onData(d: string): void {
    this.buf += d;
    while (!this.closed) {
      const i = this.buf.indexOf('\n');
      if ((i < 0 ? this.buf.length : i) > MAX_LINE) { this.drop('Input buffer full'); return; }
      if (i < 0) return;
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      this.line(line.split('\t').map(unescape));
    }
  }

  private line(args: string[]): void {
    if (!this.versionOk) {
      if (args[0] !== 'VERSION') { this.drop(`BUG: Authentication client sent unknown handshake command ${args[0]}`); return; }
      if (args.length !== 3 || !/^\d+$/.test(args[1]) || !/^\d+$/.test(args[2])) { this.drop(`didn't reply with a valid VERSION line: ${args.join('\t')}`); return; }
      if (args[1] !== '1') { this.drop(`Socket supports major version ${args[1]}, but we support only 1 (mixed old and new binaries?)`); return; }
      this.versionOk = true;
      return;
    }
    const [cmd, ...rest] = args;
    if (cmd === 'USER' || cmd === 'PASS') {
      const [id, user, ...params] = rest;
      if (id === undefined || user === undefined || !/^\d+$/.test(id)) { this.drop(`BUG: Master sent broken ${cmd}`); return; }
      const info = this.requestInfo(params);
      if (!info) { this.drop(`BUG: Master sent ${cmd} request without protocol`); return; }
      this.enqueue(() => (cmd === 'USER' ? this.user(id, user, info) : this.pass(id, user, info)));
      return;
    }
    if (cmd === 'LIST') {
      const [id] = rest;
      if (id === undefined || !/^\d+$/.test(id)) { this.drop('BUG: Master sent broken LIST'); return; }
      if (this.listing) { this.log.error('auth-master client: Auth client is already iterating users'); this.send(`DONE\t${id}\tfail\n`); return; }
      this.listing = true;
      this.enqueue(() => this.list(id).finally(() => { this.listing = false; }));
      return;
    }
    this.drop(`BUG: Unknown command in userdb socket: ${(cmd ?? '').slice(0, 80)}`);
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((e: unknown) => this.drop(`lookup failed: ${faultText(e)}`));
  }

  /** auth_request_import_info: service (required), lip, rip, … */
  private requestInfo(params: string[]): RequestInfo | null {
    const p = new Map(params.map((s) => { const eq = s.indexOf('='); return eq < 0 ? [s, ''] : [s.slice(0, eq), s.slice(eq + 1)]; }));
    const service = p.get('service');
    if (service === undefined) return null;
    return { service, rip: p.get('rip'), lip: p.get('lip'), session: p.get('session') };
  }

  private async user(id: string, login: string, info: RequestInfo): Promise<void> {
    if (this.engine.normalizeUser(login) === null) {
      this.log.info(`userdb(${login}): Username character disallowed by auth_username_chars`);
      this.send(`NOTFOUND\t${id}\n`);
      return;
    }
    const r = await this.engine.lookupUser(login, info);
    if (r.result === 'ok') this.send(`USER\t${id}\t${escape(r.user)}${fieldsText(r.fields)}\n`);
    else if (r.result === 'unknown') this.send(`NOTFOUND\t${id}\n`);
    else this.send(`FAIL\t${id}\n`);
  }

  private async pass(id: string, login: string, info: RequestInfo): Promise<void> {
    const a = await this.engine.authenticate(login, undefined, info);
    // a credentials lookup: no password (and no nopassword) is a failure; the password itself is a hidden field,
    // which is why Dovecot's reply has a tab after user= even when nothing else follows
    const usable = a.hasPassword || a.fields.some(([k]) => k === 'nopassword');
    if (a.result === 'ok' && usable) this.send(`PASS\t${id}\tuser=${escape(a.user)}\t${(a.rawFields ?? a.fields).map(([k, v]) => `${k}=${escape(v)}`).join('\t')}\n`);
    else if (a.result === 'unknown') this.send(`NOTFOUND\t${id}\n`);
    else this.send(`FAIL\t${id}\n`);
  }

  /** Every user of every userdb that can iterate; 2.3.19's auth ignores a `user=` mask (doveadm filters the names itself). */
  private async list(id: string): Promise<void> {
    let users: string[];
    try {
      users = await this.engine.iterateUsers();
    } catch (e) {
      this.log.error(`auth-master client: Iteration failed: ${(e as Error).message}`);
      this.send(`DONE\t${id}\tfail\n`);
      return;
    }
    this.send(`${users.map((u) => `LIST\t${id}\t${escape(u)}\n`).join('')}DONE\t${id}\t\n`);
  }
}
