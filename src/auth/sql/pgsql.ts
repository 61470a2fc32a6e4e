/**
 * driver = pgsql through pg: libpq conninfo (host port dbname user password
 * sslmode connect_timeout; 'quoted values'), Dovecot's maxconns=N as the
 * pool size, and PQescapeStringConn()'s escaping, which follows the
 * connection's standard_conforming_strings: on, only ' is doubled; off, a
 * backslash is an escape inside '…' and is doubled too.
 *
 * The server reports standard_conforming_strings as a ParameterStatus
 * message at startup and again whenever the session changes it (it is a
 * GUC_REPORT setting), so each client keeps the last value it was told and
 * a statement is built with the value of the connection it runs on. Like
 * libpq, a connection that never reported it is treated as "off" (the safe
 * side: a doubled backslash under "on" changes a value, never the query).
 */
import pg from 'pg';
import { SqlError, buildSql, cString, cellToString, escapeQuotesOnly, parseConnectString, type SqlDriver, type SqlResult, type SqlText } from './driver.js';

/** PQescapeStringConn() with standard_conforming_strings off: ' and \ doubled. */
export function escapeNonStandard(value: string): string {
  return cString(value).replace(/['\\]/g, (c) => c + c);
}

/** A pg client that remembers the server's standard_conforming_strings, as libpq's conn->std_strings. */
class ReportingClient extends pg.Client {
  standardStrings = false;
  constructor(config?: pg.ClientConfig) {
    super(config);
    // A connection the server ends while the client is checked out (pg_terminate_backend, a
    // restart) is reported to the running query, which fails; without a listener the same
    // error would also be thrown as an uncaught exception and take the process down.
    this.on('error', () => {});
    const con = (this as unknown as { connection: NodeJS.EventEmitter }).connection;
    con.on('parameterStatus', (m: { parameterName: string; parameterValue: string }) => {
      if (m.parameterName === 'standard_conforming_strings') this.standardStrings = m.parameterValue === 'on';
    });
  }
}

export class PgsqlDriver implements SqlDriver {
  readonly name = 'pgsql' as const;
  private readonly pool: pg.Pool;

  constructor(connect: string) {
    const kv = new Map(parseConnectString(connect));
    const sslmode = kv.get('sslmode');
    this.pool = new pg.Pool({
      Client: ReportingClient,
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

  private async run(sql: SqlText): Promise<pg.QueryResult> {
    let client: pg.PoolClient | undefined;
    let broken = false;
    try {
      client = await this.pool.connect();
      const std = (client as unknown as ReportingClient).standardStrings;
      return await client.query({ text: buildSql(sql, std ? escapeQuotesOnly : escapeNonStandard), rowMode: 'array' });
    } catch (e) {
      // an SQL error leaves the connection usable; anything else (lost connection) discards it
      broken = !(e instanceof pg.DatabaseError) || /^(08|57P)/.test(e.code ?? '');
      throw new SqlError(`pgsql: ${(e as Error).message}`);
    } finally {
      client?.release(broken);
    }
  }

  async query(sql: SqlText): Promise<SqlResult> {
    const r = await this.run(sql);
    return { columns: r.fields.map((f) => f.name), rows: (r.rows as unknown[][]).map((row) => row.map(cellToString)) };
  }

  async exec(sql: SqlText): Promise<number> {
    return (await this.run(sql)).rowCount ?? 0;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
