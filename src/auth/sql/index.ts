/**
 * Driver selection from a dovecot-sql.conf.ext `driver` + `connect`. Each
 * driver's client library (sql.js and its WebAssembly, mysql2, pg) is
 * imported only when a config names that driver: loading all three cost a
 * short-lived process such as sealadm ~0.2 s before any query.
 */
import { SqlError, type SqlDriver } from './driver.js';

export { SqlError, type SqlDriver, type SqlResult, type SqlText } from './driver.js';

export async function createSqlDriver(driver: string, connect: string): Promise<SqlDriver> {
  switch (driver) {
    case 'sqlite': return new (await import('./sqlite.js')).SqliteDriver(connect.trim());
    case 'mysql': return new (await import('./mysql.js')).MysqlDriver(connect);
    case 'pgsql': return new (await import('./pgsql.js')).PgsqlDriver(connect);
    default: throw new SqlError(`Unknown database driver '${driver}'`);
  }
}
