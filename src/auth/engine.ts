/**
 * Dovecot 2.3's authentication flow (auth-request.c, passdb/userdb chains):
 * username normalisation (auth_username_chars, auth_default_realm,
 * auth_username_format = %Lu), each passdb in order with skip/result_* rules,
 * default_fields before and override_fields after a lookup, the field rules
 * (password NULL, password_noscheme, user/username/domain renames,
 * userdb_* prefetch, nologin/reason, nopassword, nodelay, allow_nets),
 * password verification through the schemes, then the userdb chain. A
 * database outage is a temporary failure, never a wrong password. Log lines
 * never carry a password or a hash.
 */
import { createHash } from 'node:crypto';
import type { DovecotConfig } from '../config/index.js';
import { expandVarsChecked, type VarTable } from '../config/vars.js';
import { ipInNetwork } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import { SqlBackend, openBackend, parseArgsFields, type Backend, type Fields } from './databases.js';
import { SchemeError, hashPassword, verifyPassword } from './schemes/index.js';
import { statsEvent } from '../util/stats-events.js';
import { AuthCache } from './cache.js';

export interface RequestInfo {
  service: string;
  rip?: string;
  lip?: string;
  /** the connection's local port (proxy_maybe compares it with the passdb's `port`) */
  lport?: number;
  mech?: string;
  secured?: boolean;
  session?: string;
  /** SASL PLAIN's authorization id when it differs from the authentication id: a master user login. */
  loginUser?: string;
  /** The client showed a certificate that verified against ssl_ca (the auth protocol's `valid-client-cert`). */
  validClientCert?: boolean;
  /** only the passdb's password counts (a password change's old-password check) */
  noAppPasswords?: boolean;
}

/** auth_ssl_require_client_cert's refusal (auth-request-handler.c), answered before any passdb is asked. */
export const CLIENT_CERT_REFUSED = "Client didn't present valid SSL certificate";

export type PassResult = 'ok' | 'mismatch' | 'unknown' | 'tempfail';

export interface AuthOutcome {
  result: PassResult;
  /** the login as given */
  origUser: string;
  /** the final user name */
  user: string;
  /** passdb extra fields visible to clients (no password, no userdb_*) */
  fields: Fields;
  /** userdb_* fields from the passdb, prefix removed */
  userdbFields: Fields;
  nologin: boolean;
  nodelay: boolean;
  reason?: string;
  /** auth_ssl_require_client_cert refused the login (CLIENT_CERT_REFUSED): the client is told why. */
  clientCertRefused?: boolean;
  /** the login was refused by auth_username_chars before any lookup */
  refusedName?: boolean;
  /** `fields` with the values as the passdb returned them (`nologin=Y`; the auth-userdb PASS reply shows them) */
  rawFields?: Fields;
  /** the passdb returned a non-empty password (a lookup without one is a failed credentials lookup) */
  hasPassword?: boolean;
  /** a master user logged in as `user`: the master's name */
  masterUser?: string;
  /** the passdb returned fields, none of them visible to clients */
  hiddenFieldsOnly?: boolean;
  /** the password was one of the user's app passwords (not the passdb's): its id */
  appPassword?: string;
}

/**
 * Sealmail's per-device app passwords (crypt/app-passwords.ts), checked
 * only after the passdb refused the password: the server installs the
 * check (auth stays below crypt); without it (sealadm's password commands)
 * only the passdb's password counts.
 */
export type AppPasswordCheck = (home: string, password: string) => Promise<{ id: string; name: string } | null>;
let appPasswordCheck: AppPasswordCheck | null = null;
export function setAppPasswordCheck(check: AppPasswordCheck | null): void { appPasswordCheck = check; }

export interface UserOutcome {
  result: 'ok' | 'unknown' | 'tempfail';
  user: string;
  fields: Fields;
}

interface DbEntry {
  settings: Record<string, string>;
  backend: Promise<Backend>;
  /** index in the configured passdb list (the auth cache key) */
  index: number;
}

/** Fields the auth process consumes and never returns to its client (auth-request.c auth_request_set_field). */
const HIDDEN_PASSDB_FIELDS = new Set(['password', 'password_noscheme', 'allow_nets', 'allow_real_nets', 'delay_until', 'fail', 'login_user']);
/** Presence flags: Dovecot keeps only the name, whatever value the row has. */
const FLAG_FIELDS = new Set(['nologin', 'nodelay', 'nopassword', 'noauthenticate', 'proxy', 'proxy_maybe', 'proxy_always', 'starttls', 'master']);

function setField(fields: Fields, key: string, value: string): void {
  const i = fields.findIndex(([k]) => k === key);
  if (i >= 0) fields[i] = [key, value];
  else fields.push([key, value]);
}

export class AuthEngine {
  /** the ordinary passdbs; `master = yes` ones are only ever used for master user logins */
  private readonly passdbs: DbEntry[];
  private readonly masterdbs: DbEntry[];
  private readonly userdbs: DbEntry[];
  private readonly log = new Logger('auth', 'auth');
  readonly cache: AuthCache;

  constructor(private readonly config: DovecotConfig, private readonly protocol = 'doveadm') {
    const ctx = { protocol };
    const open = (s: Record<string, string>) => {
      const p = openBackend(s.driver, s.args ?? '');
      p.catch(() => {}); // reported when used
      return p;
    };
    const all = config.passdbs(ctx).map((s, index) => ({ settings: passdbRules(s), backend: open(s), index }));
    this.passdbs = all.filter((d) => d.settings.master !== 'yes');
    this.masterdbs = all.filter((d) => d.settings.master === 'yes');
    this.userdbs = config.userdbs(ctx).map((s, index) => ({ settings: s, backend: open(s), index }));
    this.cache = new AuthCache(config.getSize('auth_cache_size', ctx), config.getTime('auth_cache_ttl', ctx), config.getTime('auth_cache_negative_ttl', ctx));
  }

  private setting(key: string): string {
    return this.config.get(key, { protocol: this.protocol });
  }

  /** auth_username_chars / auth_default_realm / auth_username_format. Null = refused. */
  normalizeUser(login: string): string | null {
    const chars = this.setting('auth_username_chars');
    if (chars && [...login].some((c) => !chars.includes(c))) return null;
    let user = login;
    const realm = this.setting('auth_default_realm');
    if (realm && !user.includes('@')) user = `${user}@${realm}`;
    const fmt = this.setting('auth_username_format');
    if (fmt) user = expandVarsChecked(fmt, { user }).value;
    return user;
  }

  private vars(user: string, origUser: string, info: RequestInfo, password?: string, extra: Fields = []): VarTable {
    const v: VarTable = {
      user, orig_user: origUser, service: info.service, rip: info.rip ?? '', lip: info.lip ?? '',
      real_rip: info.rip ?? '', real_lip: info.lip ?? '', mech: info.mech ?? 'PLAIN', session: info.session ?? '',
      pid: String(process.pid), hostname: this.setting('hostname') || undefined, password,
      secured: info.secured ? 'secured' : '',
    };
    for (const [k, val] of extra) if (k === 'home') v.home = val;
    return v;
  }

  private applyTemplateFields(spec: string, fields: Fields, vars: VarTable): void {
    for (const [k, v] of parseArgsFields(spec)) setField(fields, k, expandVarsChecked(v, vars).value);
  }

  /**
   * Passdb chain. `password` undefined = lookup only (doveadm auth lookup,
   * no verification).
   */
  async authenticate(login: string, password: string | undefined, info: RequestInfo): Promise<AuthOutcome> {
    const t0 = process.hrtime.bigint();
    // a login (not a lookup) without a valid client certificate fails at once: no passdb, no failure delay
    if (password !== undefined && !info.validClientCert && this.config.getBool('auth_ssl_require_client_cert', { protocol: this.protocol })) {
      this.verbose(`${(info.mech ?? 'PLAIN').toLowerCase()}(?,${info.rip ?? ''}${info.session ? `,<${info.session}>` : ''}): ${CLIENT_CERT_REFUSED}`);
      return { result: 'mismatch', origUser: login, user: login, fields: [], userdbFields: [], nologin: false, nodelay: true, reason: CLIENT_CERT_REFUSED, clientCertRefused: true };
    }
    const out = await this.passdbChain(login, password, info);
    // Dovecot's auth_request_finished (auth-request.c): success=yes, or the error; lookups without a password send none
    if (password !== undefined) {
      const result: Record<string, string> = out.result === 'ok' ? { success: 'yes' } : { error: out.result === 'tempfail' ? 'internal failure' : 'authentication failed' };
      statsEvent('auth_request_finished', { ...result, service: info.service, mechanism: info.mech ?? 'PLAIN', user: out.user }, t0);
    }
    return out;
  }

  private async passdbChain(login: string, password: string | undefined, info: RequestInfo): Promise<AuthOutcome> {
    const refused: AuthOutcome = { result: 'unknown', origUser: login, user: login, fields: [], userdbFields: [], nologin: false, nodelay: false };
    // Dovecot's names and passwords are C strings and its mechanisms refuse a NUL
    // inside one ("Unexpected NUL in auth data", PLAIN's "invalid input"): never looked up.
    if (login.includes('\0') || password?.includes('\0') || info.loginUser?.includes('\0')) {
      this.log.info(`(${sanitizeName(login)},${info.rip ?? ''}): Unexpected NUL in auth data`);
      refused.refusedName = true;
      return refused;
    }
    let authUser = login;
    let loginUser = info.loginUser || undefined;
    const sep = this.setting('auth_master_user_separator');
    if (sep && loginUser === undefined) {
      const at = login.indexOf(sep[0]);
      if (at >= 0) { loginUser = login.slice(0, at); authUser = login.slice(at + 1); }
    }
    const norm = this.normalizeUser(authUser);
    if (norm === null) {
      this.log.info(`(${authUser},${info.rip ?? ''}): Username character disallowed by auth_username_chars`);
      refused.refusedName = true;
      return refused;
    }
    // the same name on both sides is no master login (auth_request_set_login_username)
    if (loginUser === undefined || loginUser === norm) return this.runChain(this.passdbs, norm, authUser, password, info, false);
    return this.masterLogin(loginUser, norm, authUser, password, info);
  }

  /**
   * Dovecot's master user login: the master passdbs check the master's own
   * password; on success the login continues as the requested user. A
   * master passdb with `pass = yes` (result_success = continue) then has the
   * ordinary passdbs look the user up without a password check, so only
   * existing users can be reached; without it the userdb decides.
   */
  private async masterLogin(loginUser: string, master: string, origMaster: string, password: string | undefined, info: RequestInfo): Promise<AuthOutcome> {
    const failed: AuthOutcome = { result: 'unknown', origUser: origMaster, user: master, fields: [], userdbFields: [], nologin: false, nodelay: false };
    if (!loginUser) {
      this.log.info(`(${master},${info.rip ?? ''}): Master user login attempted to use empty login username`);
      return failed;
    }
    if (!this.masterdbs.length) {
      this.log.info(`(${master},${info.rip ?? ''}): Attempted master login with no master passdbs (trying to log in as user: ${loginUser})`);
      return failed;
    }
    const target = this.normalizeUser(loginUser);
    if (target === null) {
      this.log.info(`(${master},${info.rip ?? ''}): Username character disallowed by auth_username_chars`);
      return failed;
    }
    const m = await this.runChain(this.masterdbs, master, origMaster, password, info, true);
    if (m.result !== 'ok') return m;
    this.log.info(`Master user logging in as ${target}`); // Dovecot logs it without a passdb prefix
    const out: AuthOutcome = { ...m, user: target, origUser: loginUser, masterUser: m.user };
    if (!m.continues) return out;
    // pass = yes: the user must exist in the ordinary passdbs (looked up, password not checked)
    const u = await this.runChain(this.passdbs, target, loginUser, undefined, info, false);
    return { ...u, origUser: loginUser, masterUser: m.user, result: u.result === 'ok' ? 'ok' : u.result === 'tempfail' ? 'tempfail' : 'mismatch' };
  }

  /** One passdb chain in order, with skip and result_* rules. */
  private async runChain(dbs: DbEntry[], user: string, login: string, password: string | undefined, info: RequestInfo, master: boolean): Promise<AuthOutcome & { continues?: boolean; prefix?: string }> {
    const outcome: AuthOutcome & { continues?: boolean; prefix?: string } = { result: 'unknown', origUser: login, user, fields: [], userdbFields: [], nologin: false, nodelay: false };
    let last: PassResult = 'unknown';
    let hadTempfail = false;
    let continues = false;
    for (const [i, db] of dbs.entries()) {
      const s = db.settings;
      if (s.skip === 'authenticated' && last === 'ok') continue;
      if (s.skip === 'unauthenticated' && last !== 'ok') continue;
      const r = await this.passdbOne(db, user, login, password, info, master, i < dbs.length - 1);
      if (r.result === 'tempfail') hadTempfail = true;
      const action = r.result === 'ok' ? s.result_success : r.result === 'tempfail' ? s.result_internalfail : s.result_failure;
      if (r.result !== 'unknown' || r.fields.length) {
        outcome.fields = r.fields;
        outcome.rawFields = r.rawFields;
        outcome.hasPassword = r.hasPassword;
        outcome.userdbFields = r.userdbFields;
        outcome.hiddenFieldsOnly = r.hiddenFieldsOnly;
        user = r.user;
      }
      outcome.nologin = r.nologin;
      outcome.nodelay = r.nodelay;
      outcome.reason = r.reason;
      outcome.prefix = r.prefix;
      let res: PassResult = r.result;
      if (action === 'return-ok' || action === 'continue-ok') res = 'ok';
      if (action === 'return-fail' || action === 'continue-fail') res = res === 'ok' ? 'mismatch' : res;
      last = res;
      continues = !action.startsWith('return');
      // a master passdb's success goes on with the ordinary passdbs (masterLogin), not the next master one
      if (!continues || (master && res === 'ok')) break;
    }
    if (last !== 'ok' && hadTempfail) last = 'tempfail';
    outcome.result = last;
    outcome.user = user;
    outcome.continues = continues && last === 'ok';
    return outcome;
  }

  private async passdbOne(db: DbEntry, user: string, origUser: string, password: string | undefined, info: RequestInfo, master = false, hasNext = false): Promise<AuthOutcome & { prefix: string }> {
    const s = db.settings;
    // Dovecot's log prefix (get_log_identifier): driver(user,rip[,<session>]), ",master" for a master user's lookup
    const prefix = `${s.driver}(${user},${info.rip ?? ''}${info.session ? `,<${info.session}>` : ''}${master ? ',master' : ''})`;
    const failure = (message: string) => this.logLoginFailure(prefix, message, password, hasNext);
    const out: AuthOutcome & { prefix: string } = { result: 'unknown', origUser, user, fields: [], userdbFields: [], nologin: false, nodelay: false, prefix };
    let backend: Backend;
    try {
      backend = await db.backend;
    } catch (e) {
      this.log.error(`${prefix}: ${(e as Error).message}`);
      out.result = 'tempfail';
      return out;
    }
    if (!backend.passLookup) {
      this.log.error(`${prefix}: driver ${s.driver} can't be used as a passdb`);
      out.result = 'tempfail';
      return out;
    }
    const vars = this.vars(user, origUser, info, password);
    const fields: Fields = [];
    if (s.default_fields) this.applyTemplateFields(s.default_fields, fields, vars);
    // Like Dovecot's cache key (the query's variables): a query using the
    // password (%w) must not hand one login's row to another password.
    const pwKey = backend.usesPassword && password !== undefined ? createHash('sha256').update(password).digest('hex') : '';
    const cacheKey = `${db.index}\u0000${user}\u0000${pwKey}`;
    let r = this.cache.get(cacheKey);
    if (!r) {
      r = await backend.passLookup(vars);
      this.cache.put(cacheKey, r);
    }
    if (r.kind === 'tempfail') {
      this.log.error(`${prefix}: Password query failed: ${r.error}`);
      out.result = 'tempfail';
      return out;
    }
    if (r.kind === 'unknown') {
      failure('unknown user');
      return out;
    }
    for (const [k, v] of r.fields) setField(fields, k, v);
    if (s.override_fields) this.applyTemplateFields(s.override_fields, fields, vars);

    let stored: string | null = null;
    let noScheme = false;
    const visible: Fields = [];
    const raw: Fields = [];
    for (const [k, v] of fields) {
      if (k === 'password') { stored = v; continue; }
      if (k === 'password_noscheme') { stored = v; noScheme = true; continue; }
      if (k === 'user') { user = v; continue; }
      if (k === 'username') { user = v.includes('@') ? v : `${v}${user.includes('@') ? user.slice(user.indexOf('@')) : ''}`; continue; }
      if (k === 'domain') { user = `${user.split('@')[0]}@${v}`; continue; }
      if (k.startsWith('userdb_')) { out.userdbFields.push([k.slice(7), v]); continue; }
      visible.push([k, FLAG_FIELDS.has(k) ? '' : v]);
      raw.push([k, v]);
    }
    out.user = user;
    const has = (k: string) => visible.some(([f]) => f === k);
    out.nologin = has('nologin');
    out.nodelay = has('nodelay');
    out.reason = visible.find(([k]) => k === 'reason')?.[1];
    // Dovecot ignores nopassword next to a non-empty password (and logs it): it may not open an account
    if (has('nopassword') && !has('noauthenticate') && stored !== null && stored.replace(/^\{[^}]*\}/, '') !== '') {
      this.log.error(`${prefix}: nopassword set but password is non-empty`);
      const drop = (f: Fields) => f.filter(([k]) => k !== 'nopassword');
      visible.splice(0, visible.length, ...drop(visible));
      raw.splice(0, raw.length, ...drop(raw));
    }
    out.fields = visible.filter(([k]) => !HIDDEN_PASSDB_FIELDS.has(k));
    // Dovecot's reply carries an empty field when the passdb set fields but none a client sees (user=, userdb_*, allow_nets)
    out.hiddenFieldsOnly = out.fields.length === 0 && fields.some(([k]) => k !== 'password' && k !== 'password_noscheme' && (k !== 'nopassword' || has('nopassword')));
    out.rawFields = raw.filter(([k]) => !HIDDEN_PASSDB_FIELDS.has(k));
    out.hasPassword = stored !== null && stored !== '';

    const allowNets = visible.find(([k]) => k === 'allow_nets')?.[1];
    if (allowNets && password !== undefined) {
      const ok = info.rip && allowNets.split(/[\s,]+/).filter(Boolean).some((n) => n === 'local' ? info.rip === info.lip : ipInNetwork(info.rip!, n));
      if (!ok) {
        this.verbose(`${prefix}: allow_nets check failed: IP not in allowed networks`);
        out.result = 'mismatch';
        return out;
      }
    }
    if (password === undefined) {
      out.result = 'ok';
      return out;
    }
    if (s.deny === 'yes') {
      this.verbose(`${prefix}: User found from deny passdb`);
      out.result = 'mismatch';
      return out;
    }
    if (has('nopassword')) {
      out.result = 'ok';
      return out;
    }
    if (stored === null || stored === '') {
      this.verbose(`${prefix}: No password in passdb`);
      out.result = 'mismatch';
      return out;
    }
    try {
      const defaultScheme = backend.defaultScheme ?? 'MD5';
      const ok = await verifyPassword(Buffer.from(password, 'utf8'), stored, { defaultScheme, user, noScheme });
      const app = ok || master ? null : await this.appPassword(prefix, user, password, info, out.userdbFields);
      if (app) out.appPassword = app;
      else if (!ok) failure('Password mismatch');
      out.result = ok || app ? 'ok' : 'mismatch';
    } catch (e) {
      // Dovecot: an unusable stored hash fails this login (logged as an error), not a tempfail.
      this.log.error(`${prefix}: ${e instanceof SchemeError ? e.message : 'password verification failed'}`);
      out.result = 'mismatch';
    }
    return out;
  }

  /**
   * The passdb refused `password`: is it one of the user's app passwords?
   * The userdb gives the home (only now, so a normal login costs nothing
   * more); a user without the file costs one failed open.
   */
  private async appPassword(prefix: string, user: string, password: string, info: RequestInfo, prefetched: Fields): Promise<string | null> {
    if (!appPasswordCheck || info.noAppPasswords) return null;
    const u = await this.lookupUser(user, info, prefetched, true).catch(() => null);
    const home = u?.result === 'ok' ? u.fields.find(([k]) => k === 'home')?.[1] : undefined;
    if (!home) return null;
    const hit = await appPasswordCheck(home, password);
    if (hit) this.log.info(`${prefix}: logged in with app password ${hit.id}${hit.name ? ` (${sanitizeName(hit.name)})` : ''}`);
    return hit?.id ?? null;
  }

  /** An auth request's info line, logged only with auth_verbose = yes (Dovecot's auth request events). */
  private verbose(line: string): void {
    if (this.config.getBool('auth_verbose', { protocol: this.protocol })) this.log.info(line);
  }

  /**
   * auth_request_log_login_failure: `prefix: Password mismatch` / `unknown
   * user` with auth_verbose; with auth_verbose_passwords (plain, sha1,
   * `yes` = plain, `:N` cuts) always, the given password appended, and
   * " - trying the next passdb" when one follows.
   */
  private logLoginFailure(prefix: string, message: string, password: string | undefined, hasNext: boolean): void {
    const [kind, cut] = (this.config.get('auth_verbose_passwords', { protocol: this.protocol }) || 'no').split(':');
    // Dovecot's auth refuses to start on another value; here it logs as `no`
    if (kind !== 'yes' && kind !== 'plain' && kind !== 'sha1') { this.verbose(`${prefix}: ${message}`); return; }
    const max = cut && /^\d+$/.test(cut) ? Number(cut) : 1024;
    let given = '';
    if (password !== undefined) {
      given = kind === 'sha1' ? `(SHA1 of given password: ${createHash('sha1').update(password, 'utf8').digest('hex').slice(0, max)})`
        : `(given password: ${password.slice(0, max)})`;
    }
    this.log.info(`${prefix}: ${message} ${given}${hasNext ? ' - trying the next passdb' : ''}`);
  }

  /** Userdb chain (LMTP delivery, IMAP login, doveadm -u). */
  async lookupUser(login: string, info: RequestInfo, prefetched: Fields = [], afterPassdb = false): Promise<UserOutcome> {
    // after a passdb lookup the name is the one the passdb gave (a user= field keeps its case): Dovecot
    // formats a login with auth_username_format once, when the request starts
    const user = afterPassdb ? login : this.normalizeUser(login) ?? login;
    let result: UserOutcome = { result: 'unknown', user, fields: [] };
    let hadTempfail = false;
    for (const db of this.userdbs) {
      const s = db.settings;
      if (s.skip === 'found' && result.result === 'ok') continue;
      if (s.skip === 'notfound' && result.result !== 'ok') continue;
      let backend: Backend;
      try { backend = await db.backend; } catch (e) {
        this.log.error(`${s.driver}(${user}): ${(e as Error).message}`);
        hadTempfail = true;
        continue;
      }
      if (!backend.userLookup) continue;
      const vars = this.vars(result.user, login, info);
      const fields: Fields = [...prefetched];
      if (s.default_fields) this.applyTemplateFields(s.default_fields, fields, vars);
      const r = await backend.userLookup(vars, prefetched);
      let res: UserOutcome['result'];
      if (r.kind === 'tempfail') {
        this.log.error(`${s.driver}(${user}): User query failed: ${r.error}`);
        hadTempfail = true;
        res = 'tempfail';
      } else if (r.kind === 'unknown') {
        res = 'unknown';
      } else {
        for (const [k, v] of r.fields) setField(fields, k, v);
        if (s.override_fields) this.applyTemplateFields(s.override_fields, fields, vars);
        let name = result.user;
        const own: Fields = [];
        for (const [k, v] of fields) {
          if (k === 'user') name = v;
          else own.push([k, v]);
        }
        result = { result: 'ok', user: name, fields: own };
        res = 'ok';
      }
      const action = res === 'ok' ? s.result_success : res === 'tempfail' ? s.result_internalfail : s.result_failure;
      if (action.startsWith('return')) break;
    }
    if (result.result !== 'ok' && hadTempfail) result = { ...result, result: 'tempfail' };
    return result;
  }

  /** iterate_query over every userdb that can iterate (doveadm -A, user masks). */
  async iterateUsers(): Promise<string[]> {
    const out: string[] = [];
    for (const db of this.userdbs) {
      const backend = await db.backend;
      if (backend.iterate) out.push(...(await backend.iterate()));
    }
    return out;
  }

  /**
   * Store a new password hash for `user` in the first SQL passdb, with the
   * passdb's default_pass_scheme, through `plugin { sealmail_password_update_query }`
   * (Sealmail's own setting, in the plugin section Dovecot leaves alone, so
   * Dovecot still starts on the same tree; `%{new_password_hash}` is the new
   * hash with its {SCHEME} prefix). ISPmail's schema gets a working
   * default. Exactly one row must change: anything else is an error and the
   * caller must not go on.
   */
  async updatePassword(user: string, newPassword: string, info: RequestInfo): Promise<{ scheme: string }> {
    for (const db of this.passdbs) {
      const b = await db.backend;
      if (!(b instanceof SqlBackend)) continue;
      const tpl = this.config.plugin({ protocol: this.protocol }).sealmail_password_update_query || defaultPasswordUpdateQuery(b.settings.get('password_query') ?? '');
      if (!tpl) throw new Error('no plugin { sealmail_password_update_query } in dovecot.conf, and the schema is not ISPmail\'s virtual_users: set one, e.g. UPDATE users SET password = \'%{new_password_hash}\' WHERE userid = \'%u\'');
      const scheme = b.defaultScheme;
      const hash = await hashPassword(scheme, Buffer.from(newPassword, "utf8"), { user }); // with its {SCHEME} prefix
      const vars = { ...this.vars(user, user, info), new_password_hash: hash };
      const n = await b.update(tpl, vars);
      if (n !== 1) throw new Error(`sealmail_password_update_query changed ${n} rows for ${user} (expected exactly 1)`);
      this.cache.flush();
      return { scheme };
    }
    throw new Error('no SQL passdb: Sealmail can only change passwords stored in SQL');
  }

  /**
   * Why `newPassword` cannot be stored by the scheme updatePassword would
   * use (null: it can). Asked before anything changes: a NUL never reaches a
   * passdb (Dovecot refuses it in auth data), and a scheme that keeps only a
   * prefix (bcrypt's 72 bytes, PLAIN-TRUNC) would let a shorter password in
   * too, so the hash must verify the password and refuse it one character short.
   */
  async newPasswordProblem(user: string, newPassword: string): Promise<string | null> {
    if (!newPassword) return 'the new password is empty';
    if (newPassword.includes('\0')) return 'the new password contains a NUL character';
    for (const db of this.passdbs) {
      const b = await db.backend;
      if (!(b instanceof SqlBackend)) continue;
      const scheme = b.defaultScheme;
      const plain = Buffer.from(newPassword, 'utf8');
      const hash = await hashPassword(scheme, plain, { user });
      const opts = { defaultScheme: scheme, user };
      if (!(await verifyPassword(plain, hash, opts))) return `the passdb scheme ${scheme} cannot store this password`;
      const shorter = Array.from(newPassword).slice(0, -1).join('');
      if (shorter && (await verifyPassword(Buffer.from(shorter, 'utf8'), hash, opts))) return `the new password is too long for the passdb scheme ${scheme} (it would keep only a prefix)`;
      return null;
    }
    return null; // updatePassword says why there is nowhere to store it
  }

  async close(): Promise<void> {
    const { closeAllSqlBackends } = await import('./databases.js');
    await closeAllSqlBackends();
  }
}

/** A passdb's rules as Dovecot reads them: `pass = yes` is the old spelling of result_success = continue. */
function passdbRules(s: Record<string, string>): Record<string, string> {
  return s.pass === 'yes' ? { ...s, result_success: 'continue' } : s;
}

/** A name for a log line: control characters shown as '?', as str_sanitize() does. */
function sanitizeName(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 128);
}

/** ISPmail's schema (virtual_users with email/password): the update its password_query implies. */
export function defaultPasswordUpdateQuery(passwordQuery: string): string | null {
  if (!/\bvirtual_users\b/i.test(passwordQuery) || !/\bemail\b/i.test(passwordQuery)) return null;
  return "UPDATE virtual_users SET password = '%{new_password_hash}' WHERE email = '%u'";
}
