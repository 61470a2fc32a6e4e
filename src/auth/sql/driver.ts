/**
 * One interface over Dovecot's three SQL drivers (sqlite through sql.js,
 * mysql through mysql2, pgsql through pg). Results keep column names and
 * NULLs, which Dovecot's field mapping depends on. Any driver failure —
 * connection refused, SQL error — is an SqlError: for authentication that is
 * a temporary failure, never a wrong password.
 *
 * Values are escaped by the rules of the connection the statement runs on,
 * as Dovecot's mysql_real_escape_string() and PQescapeStringConn() do: a
 * query is given as a function of the escaper, called once the driver holds
 * that connection and knows its server's mode (MySQL NO_BACKSLASH_ESCAPES,
 * PostgreSQL standard_conforming_strings). A backslash escape sent to a
 * server that takes backslashes literally ends the quoted value early: a
 * password could then rewrite the query.
 */
export interface SqlResult {
  columns: string[];
  rows: (string | null)[][];
}

export class SqlError extends Error {}

/** Escape a value for use inside '…' in a statement. */
export type SqlEscape = (value: string) => string;

/** A statement: fixed text, or built with the escaping of the connection it will run on. */
export type SqlText = string | ((escape: SqlEscape) => string);

export interface SqlDriver {
  readonly name: 'sqlite' | 'mysql' | 'pgsql';
  query(sql: SqlText): Promise<SqlResult>;
  /** Run a statement that changes data (update_query, password changes). */
  exec(sql: SqlText): Promise<number>;
  close(): Promise<void>;
}

export function buildSql(sql: SqlText, escape: SqlEscape): string {
  return typeof sql === 'string' ? sql : sql(escape);
}

/**
 * Dovecot's values are C strings: a NUL ends them before any escaping
 * (strlen()), so nothing after it ever reaches the server. The auth engine
 * refuses NULs in logins and passwords before a lookup; this keeps every
 * other value (userdb lookups by recipient, iterate masks) the same.
 */
export function cString(value: string): string {
  const nul = value.indexOf('\0');
  return nul < 0 ? value : value.slice(0, nul);
}

/** The quote rules every driver shares: ' doubled (SQL standard; MySQL NO_BACKSLASH_ESCAPES, sqlite). */
export function escapeQuotesOnly(value: string): string {
  return cString(value).replace(/'/g, "''");
}

/** Dovecot's connect strings: space-separated key=value, values may be 'single quoted'. */
export function parseConnectString(s: string): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  while (i < s.length) {
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (i >= s.length) break;
    const eq = s.indexOf('=', i);
    if (eq < 0) { out.push([s.slice(i).trim(), '']); break; }
    const key = s.slice(i, eq).trim();
    i = eq + 1;
    let value = '';
    if (s[i] === "'") {
      i++;
      while (i < s.length && s[i] !== "'") {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        value += s[i++];
      }
      i++;
    } else {
      while (i < s.length && s[i] !== ' ' && s[i] !== '\t') value += s[i++];
    }
    out.push([key, value]);
  }
  return out;
}

export function cellToString(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  return String(v);
}
