/** Driver selection from a dovecot-sql.conf.ext `driver` + `connect`. */
import { SqliteDriver } from './sqlite.js';
import { MysqlDriver } from './mysql.js';
import { PgsqlDriver } from './pgsql.js';
import { SqlError, type SqlDriver } from './driver.js';

export { SqlError, type SqlDriver, type SqlResult, type SqlText } from './driver.js';

export function createSqlDriver(driver: string, connect: string): SqlDriver {
  switch (driver) {
    case 'sqlite': return new SqliteDriver(connect.trim());
    case 'mysql': return new MysqlDriver(connect);
    case 'pgsql': return new PgsqlDriver(connect);
    default: throw new SqlError(`Unknown database driver '${driver}'`);
  }
}
