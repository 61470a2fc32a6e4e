/**
 * passdb and userdb backends as Dovecot 2.3 configures them: `driver = sql`
 * (args = a dovecot-sql.conf.ext), `static` (args = key=value …),
 * `passwd-file` (args = [scheme=X] [username_format=%u] PATH) and
 * `prefetch` (userdb fields the passdb already returned). A backend only
 * looks up; the chain logic, password checks and field rules live in
 * engine.ts.
 */
import { readFile } from 'node:fs/promises';
import { checkKnownKeys, ConfigError, parseExtFile } from '../config/index.js';
import { expandVarsChecked, type VarTable } from '../config/vars.js';
import { createSqlDriver, SqlError, type SqlDriver, type SqlText } from './sql/index.js';

export type Fields = [string, string][];

export type LookupResult =
  | { kind: 'found'; fields: Fields }
  | { kind: 'unknown' }
  | { kind: 'tempfail'; error: string };

export interface Backend {
  readonly driver: string;
  passLookup?(vars: VarTable): Promise<LookupResult>;
  userLookup?(vars: VarTable, prefetched: Fields): Promise<LookupResult>;
  iterate?(): Promise<string[]>;
  /** Run update_query-style writes (password change). */
  update?(template: string, vars: VarTable): Promise<number>;
  defaultScheme?: string;
  /** The lookup depends on the login password (%w): the auth cache keys on it. */
  usesPassword?: boolean;
  close?(): Promise<void>;
}

const SQL_KEYS = ['driver', 'connect', 'password_query', 'user_query', 'update_query', 'iterate_query', 'default_pass_scheme', 'userdb_warning_disable'];

/** Dovecot's built-in queries, used only when the file leaves them unset. */
const DEFAULT_QUERIES = {
  password_query: "SELECT username, domain, password FROM users WHERE username = '%n' AND domain = '%d'",
  user_query: "SELECT home, uid, gid FROM users WHERE username = '%n' AND domain = '%d'",
  iterate_query: 'SELECT username, domain FROM users',
};

/** SQL backends are shared between passdb and userdb when they name the same file. */
const sqlCache = new Map<string, Promise<SqlBackend>>();

export class SqlBackend implements Backend {
  readonly driver = 'sql';
  readonly usesPassword: boolean;
  constructor(readonly db: SqlDriver, readonly settings: Map<string, string>, readonly defaultScheme: string) {
    this.usesPassword = /%(\{password\}|[A-Z]*w)/.test(settings.get('password_query') ?? '');
  }

  static open(path: string): Promise<SqlBackend> {
    let p = sqlCache.get(path);
    if (!p) {
      p = (async () => {
        const ext = await parseExtFile(path);
        const moved = ext.values.get('password_update_query');
        if (moved) {
          // Dovecot's auth process dies on this key, so it cannot live here: a
          // rollback to Dovecot must start on the same files.
          throw new ConfigError(path, moved.line, 'Unknown setting: password_update_query (Dovecot refuses it here too: move it to dovecot.conf as plugin { sealmail_password_update_query = … })');
        }
        checkKnownKeys(ext, SQL_KEYS);
        const get = (k: string) => ext.values.get(k)?.value;
        if (!get('driver')) throw new Error(`${path}: sql: driver not set`);
        if (get('connect') === undefined) throw new Error(`${path}: sql: connect string not set`);
        const settings = new Map([...ext.values].map(([k, v]) => [k, v.value]));
        return new SqlBackend(await createSqlDriver(get('driver')!, get('connect')!), settings, (get('default_pass_scheme') ?? 'MD5').toUpperCase());
      })();
      sqlCache.set(path, p);
      p.catch(() => sqlCache.delete(path));
    }
    return p;
  }

  /** The template as a statement: its %variables escaped by the rules of the connection it runs on. */
  private expand(template: string, vars: VarTable): SqlText {
    return (escape) => expandVarsChecked(template, vars, { escape }).value;
  }

  private async rows(query: SqlText): Promise<LookupResult & { count?: number; columns?: string[] }> {
    try {
      const r = await this.db.query(query);
      if (r.rows.length === 0) return { kind: 'unknown' };
      const fields: Fields = [];
      r.columns.forEach((c, i) => {
        const v = r.rows[0][i];
        if (v !== null) fields.push([c, v]);
      });
      return { kind: 'found', fields, count: r.rows.length, columns: r.columns };
    } catch (e) {
      return { kind: 'tempfail', error: e instanceof SqlError ? e.message : String(e) };
    }
  }

  async passLookup(vars: VarTable): Promise<LookupResult> {
    const query = this.expand(this.settings.get('password_query') ?? DEFAULT_QUERIES.password_query, vars);
    const r = await this.rows(query);
    if (r.kind !== 'found') return r;
    if ((r.count ?? 1) > 1) return { kind: 'tempfail', error: 'Password query returned multiple matches' };
    const cols = r.columns ?? [];
    if (!cols.includes('password') && !cols.includes('password_noscheme')) {
      return { kind: 'tempfail', error: "Password query must return a field named 'password'" };
    }
    return { kind: 'found', fields: r.fields };
  }

  async userLookup(vars: VarTable): Promise<LookupResult> {
    // Several rows: Dovecot uses the first one without complaint.
    return this.rows(this.expand(this.settings.get('user_query') ?? DEFAULT_QUERIES.user_query, vars));
  }

  async iterate(): Promise<string[]> {
    const r = await this.db.query(this.settings.get('iterate_query') ?? DEFAULT_QUERIES.iterate_query);
    const ui = r.columns.indexOf('user');
    const ni = r.columns.indexOf('username');
    const di = r.columns.indexOf('domain');
    return r.rows.map((row) => (ui >= 0 ? row[ui] ?? '' : ni >= 0 ? (di >= 0 && row[di] ? `${row[ni]}@${row[di]}` : row[ni] ?? '') : '')).filter(Boolean);
  }

  async update(template: string, vars: VarTable): Promise<number> {
    return this.db.exec(this.expand(template, vars));
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/** `key=value key2=value2` args of static/passwd-file extra fields. */
export function parseArgsFields(args: string): Fields {
  return args.split(/\s+/).filter(Boolean).map((t) => {
    const eq = t.indexOf('=');
    return eq < 0 ? [t, ''] as [string, string] : [t.slice(0, eq), t.slice(eq + 1)] as [string, string];
  });
}

export class StaticBackend implements Backend {
  readonly driver = 'static';
  /** Dovecot's static passdb takes `password=` as PLAIN unless it carries a {SCHEME} prefix. */
  readonly defaultScheme = 'PLAIN';
  constructor(private readonly fields: Fields) {}
  async passLookup(vars: VarTable): Promise<LookupResult> {
    return { kind: 'found', fields: this.fields.map(([k, v]) => [k, expandVarsChecked(v, vars).value]) };
  }
  async userLookup(vars: VarTable): Promise<LookupResult> {
    return { kind: 'found', fields: this.fields.map(([k, v]) => [k, expandVarsChecked(v, vars).value]) };
  }
}

/**
 * passwd-file: `user:password:uid:gid:(gecos):home:(shell):extra_fields`,
 * extra fields space-separated, `userdb_` prefixed for userdb values.
 */
export class PasswdFileBackend implements Backend {
  readonly driver = 'passwd-file';
  readonly defaultScheme: string;
  private readonly path: string;
  private readonly usernameFormat: string;
  constructor(args: string) {
    const parts = args.split(/\s+/).filter(Boolean);
    this.path = parts.pop() ?? '';
    const opt = new Map(parts.map((p) => p.split('=', 2) as [string, string]));
    this.defaultScheme = (opt.get('scheme') ?? 'CRYPT').toUpperCase();
    this.usernameFormat = opt.get('username_format') ?? '%u';
  }
  private async entry(vars: VarTable): Promise<string[] | null | Error> {
    const path = expandVarsChecked(this.path, vars).value;
    let text: string;
    try { text = await readFile(path, 'utf8'); } catch (e) { return e as Error; }
    const name = expandVarsChecked(this.usernameFormat, vars).value;
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const f = line.split(':');
      if (f[0] === name) return f;
    }
    return null;
  }
  async passLookup(vars: VarTable): Promise<LookupResult> {
    const f = await this.entry(vars);
    if (f instanceof Error) return { kind: 'tempfail', error: `passwd-file: ${f.message}` };
    if (!f) return { kind: 'unknown' };
    const fields: Fields = [['password', f[1] ?? '']];
    for (const [k, v] of parseArgsFields(f.slice(7).join(':'))) fields.push([k, v]);
    return { kind: 'found', fields };
  }
  async userLookup(vars: VarTable): Promise<LookupResult> {
    const f = await this.entry(vars);
    if (f instanceof Error) return { kind: 'tempfail', error: `passwd-file: ${f.message}` };
    if (!f) return { kind: 'unknown' };
    const fields: Fields = [];
    if (f[2]) fields.push(['uid', f[2]]);
    if (f[3]) fields.push(['gid', f[3]]);
    if (f[5]) fields.push(['home', f[5]]);
    for (const [k, v] of parseArgsFields(f.slice(7).join(':'))) if (k.startsWith('userdb_')) fields.push([k.slice(7), v]);
    return { kind: 'found', fields };
  }
  async iterate(): Promise<string[]> {
    const text = await readFile(this.path, 'utf8');
    return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':')[0]);
  }
}

export class PrefetchBackend implements Backend {
  readonly driver = 'prefetch';
  async userLookup(_vars: VarTable, prefetched: Fields): Promise<LookupResult> {
    return prefetched.length ? { kind: 'found', fields: prefetched } : { kind: 'unknown' };
  }
}

export async function openBackend(driver: string, args: string): Promise<Backend> {
  switch (driver) {
    case 'sql': return SqlBackend.open(args.trim());
    case 'static': return new StaticBackend(parseArgsFields(args));
    case 'passwd-file': return new PasswdFileBackend(args);
    case 'prefetch': return new PrefetchBackend();
    default: throw new Error(`Unknown database driver '${driver}'`);
  }
}

export async function closeAllSqlBackends(): Promise<void> {
  const all = [...sqlCache.values()];
  sqlCache.clear();
  await Promise.all(all.map(async (p) => (await p.catch(() => null))?.close()));
}
