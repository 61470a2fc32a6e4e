/**
 * One interface over Dovecot's three SQL drivers (sqlite through sql.js,
 * mysql through mysql2, pgsql through pg). Results keep column names and
 * NULLs, which Dovecot's field mapping depends on. Any driver failure —
 * connection refused, SQL error — is an SqlError: for authentication that is
 * a temporary failure, never a wrong password.
 */
export interface SqlResult {
  columns: string[];
  rows: (string | null)[][];
}

export class SqlError extends Error {}

export interface SqlDriver {
  readonly name: 'sqlite' | 'mysql' | 'pgsql';
  query(sql: string): Promise<SqlResult>;
  /** Run a statement that changes data (update_query, password changes). */
  exec(sql: string): Promise<number>;
  /** Escape a value for use inside '…' in a query, as the C driver would. */
  escape(value: string): string;
  close(): Promise<void>;
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
