/**
 * driver = pgsql through pg: libpq conninfo (host port dbname user password
 * sslmode connect_timeout; 'quoted values'), Dovecot's maxconns=N as the
 * pool size, and PQescapeStringConn()'s escaping (standard_conforming_strings
 * on: only ' is doubled).
 */
import pg from 'pg';
import { SqlError, cellToString, parseConnectString, type SqlDriver, type SqlResult } from './driver.js';

export class PgsqlDriver implements SqlDriver {
  readonly name = 'pgsql' as const;
  private readonly pool: pg.Pool;

  constructor(connect: string) {
    const kv = new Map(parseConnectString(connect));
    const sslmode = kv.get('sslmode');
    this.pool = new pg.Pool({
      host: kv.get('host'),
      port: kv.has('port') ? Number(kv.get('port')) : undefined,
      database: kv.get('dbname'),
      user: kv.get('user'),
      password: kv.get('password'),
      ssl: sslmode && sslmode !== 'disable' && sslmode !== 'allow' ? { rejectUnauthorized: sslmode === 'verify-full' || sslmode === 'verify-ca' } : undefined,
      connectionTimeoutMillis: Number(kv.get('connect_timeout') ?? 5) * 1000,
      max: Number(kv.get('maxconns') ?? 5),
    });
    // An idle client dying (server restart) must not crash the process.
    this.pool.on('error', () => {});
  }

  async query(sql: string): Promise<SqlResult> {
    try {
      const r = await this.pool.query({ text: sql, rowMode: 'array' });
      return { columns: r.fields.map((f) => f.name), rows: (r.rows as unknown[][]).map((row) => row.map(cellToString)) };
    } catch (e) {
      throw new SqlError(`pgsql: ${(e as Error).message}`);
    }
  }

  async exec(sql: string): Promise<number> {
    try {
      return (await this.pool.query(sql)).rowCount ?? 0;
    } catch (e) {
      throw new SqlError(`pgsql: ${(e as Error).message}`);
    }
  }

  escape(value: string): string {
    return value.replace(/'/g, "''");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
