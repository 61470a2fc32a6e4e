/**
 * driver = mysql through mysql2: Dovecot's connect string (host= port=
 * dbname= user= password= ssl_* connect_timeout=; a host starting with "/"
 * is a unix socket; several host= entries are tried in order), a small
 * pool per host, and mysql_real_escape_string()'s escaping: it follows the
 * server status flag SERVER_STATUS_NO_BACKSLASH_ESCAPES that every OK packet
 * of that connection carries (libmysqlclient keeps it in
 * mysql->server_status). With the flag a backslash is an ordinary character
 * and only ' is doubled; without it the backslash escapes apply.
 *
 * The flag is read on each physical connection before its first statement
 * (a `DO 0`, whose OK packet reports the session's status after any
 * init_connect) and refreshed from the OK packet of every data-changing
 * statement. A SELECT cannot change its session's sql_mode, and a new or
 * reconnected connection is a new entry, so the mode used is always the
 * mode of the session the statement runs in.
 */
import { createPool, type Pool, type PoolConnection, type ResultSetHeader } from 'mysql2/promise';
import { readFileSync } from 'node:fs';
import { SqlError, buildSql, cString, cellToString, escapeQuotesOnly, parseConnectString, type SqlDriver, type SqlResult, type SqlText } from './driver.js';

/** MySQL protocol server status bit (include/mysql_com.h). */
const SERVER_STATUS_NO_BACKSLASH_ESCAPES = 512;

/** escape_string_for_mysql(): the backslash escapes of the default sql_mode. */
export function escapeBackslashes(value: string): string {
  return cString(value).replace(/[\n\r\\'"\x1a]/g, (c) => ({ '\n': '\\n', '\r': '\\r', '\\': '\\\\', "'": "\\'", '"': '\\"', '\x1a': '\\Z' })[c]!);
}

function isOkPacket(r: unknown): r is ResultSetHeader {
  return typeof r === 'object' && r !== null && !Array.isArray(r) && 'serverStatus' in r;
}

export class MysqlDriver implements SqlDriver {
  readonly name = 'mysql' as const;
  private readonly pools: Pool[] = [];
  /** Last server status flags seen per physical connection. */
  private readonly status = new WeakMap<object, number>();

  constructor(connect: string) {
    const kv = parseConnectString(connect);
    const hosts = kv.filter(([k]) => k === 'host').map(([, v]) => v);
    const get = (k: string) => kv.find(([key]) => key === k)?.[1];
    const ssl = get('ssl_ca') || get('ssl_cert') ? {
      ca: get('ssl_ca') ? readFileSync(get('ssl_ca')!) : undefined,
      cert: get('ssl_cert') ? readFileSync(get('ssl_cert')!) : undefined,
      key: get('ssl_key') ? readFileSync(get('ssl_key')!) : undefined,
      rejectUnauthorized: get('ssl_verify_server_cert') === 'yes',
    } : undefined;
    for (const host of hosts.length ? hosts : ['localhost']) {
      this.pools.push(createPool({
        ...(host.startsWith('/') ? { socketPath: host } : { host, port: Number(get('port') ?? 3306) }),
        database: get('dbname'),
        user: get('user'),
        password: get('password'),
        ssl,
        connectTimeout: Number(get('connect_timeout') ?? 5) * 1000,
        connectionLimit: 5,
        charset: 'utf8mb4',
        dateStrings: true,
        supportBigNumbers: true,
        bigNumberStrings: true,
      }));
    }
  }

  private async run(sql: SqlText): Promise<[unknown, { name: string }[] | undefined]> {
    let last: Error | null = null;
    for (const pool of this.pools) {
      let conn: PoolConnection | undefined;
      try {
        conn = await pool.getConnection();
        const text = buildSql(sql, await this.escaperFor(conn));
        const [rows, fields] = await conn.query({ sql: text, rowsAsArray: true });
        if (isOkPacket(rows)) this.status.set(conn.connection, rows.serverStatus);
        return [rows, fields as { name: string }[] | undefined];
      } catch (e) {
        last = e as Error;
        const fatal = (e as { fatal?: boolean }).fatal === true;
        // a lost connection is never handed out again
        if (fatal) { conn?.destroy(); conn = undefined; }
        // An SQL error is final; a connection error tries the next host.
        if ((e as { sqlState?: string }).sqlState && !fatal) break;
      } finally {
        conn?.release();
      }
    }
    throw new SqlError(`mysql: ${last?.message ?? 'no host'}`);
  }

  /** The escaping of this connection's session, as mysql_real_escape_string() chooses it. */
  private async escaperFor(conn: PoolConnection): Promise<(v: string) => string> {
    let flags = this.status.get(conn.connection);
    if (flags === undefined) {
      const [ok] = await conn.query('DO 0');
      if (!isOkPacket(ok)) throw new SqlError('mysql: no OK packet for DO 0: server status unknown');
      flags = ok.serverStatus;
      this.status.set(conn.connection, flags);
    }
    return flags & SERVER_STATUS_NO_BACKSLASH_ESCAPES ? escapeQuotesOnly : escapeBackslashes;
  }

  async query(sql: SqlText): Promise<SqlResult> {
    const [rows, fields] = await this.run(sql);
    return { columns: (fields ?? []).map((f) => f.name), rows: (rows as unknown[][]).map((r) => r.map(cellToString)) };
  }

  async exec(sql: SqlText): Promise<number> {
    const [res] = await this.run(sql);
    return (res as { affectedRows?: number }).affectedRows ?? 0;
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.end()));
  }
}
