/**
 * driver = mysql through mysql2: Dovecot's connect string (host= port=
 * dbname= user= password= ssl_* connect_timeout=; a host starting with "/"
 * is a unix socket; several host= entries are tried in order), a small
 * pool per host, and mysql_real_escape_string()'s escaping.
 */
import { createPool, type Pool } from 'mysql2/promise';
import { readFileSync } from 'node:fs';
import { SqlError, cellToString, parseConnectString, type SqlDriver, type SqlResult } from './driver.js';

export class MysqlDriver implements SqlDriver {
  readonly name = 'mysql' as const;
  private readonly pools: Pool[] = [];

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

  private async run(sql: string): Promise<[unknown, { name: string }[] | undefined]> {
    let last: Error | null = null;
    for (const pool of this.pools) {
      try {
        const [rows, fields] = await pool.query({ sql, rowsAsArray: true });
        return [rows, fields as { name: string }[] | undefined];
      } catch (e) {
        last = e as Error;
        // An SQL error is final; a connection error tries the next host.
        if ((e as { sqlState?: string }).sqlState && (e as { fatal?: boolean }).fatal !== true) break;
      }
    }
    throw new SqlError(`mysql: ${last?.message ?? 'no host'}`);
  }

  async query(sql: string): Promise<SqlResult> {
    const [rows, fields] = await this.run(sql);
    return { columns: (fields ?? []).map((f) => f.name), rows: (rows as unknown[][]).map((r) => r.map(cellToString)) };
  }

  async exec(sql: string): Promise<number> {
    const [res] = await this.run(sql);
    return (res as { affectedRows?: number }).affectedRows ?? 0;
  }

  escape(value: string): string {
    return value.replace(/[\0\n\r\\'"\x1a]/g, (c) => ({ '\0': '\\0', '\n': '\\n', '\r': '\\r', '\\': '\\\\', "'": "\\'", '"': '\\"', '\x1a': '\\Z' })[c]!);
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.end()));
  }
}
