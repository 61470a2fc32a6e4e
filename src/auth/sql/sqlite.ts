/**
 * driver = sqlite through sql.js (WebAssembly, no native build): the whole
 * database file is loaded into memory, re-read when its mtime or size
 * changes on disk (an admin panel writing with the sqlite3 tool is seen at
 * the next lookup), and writes replace the file atomically (temp file +
 * fsync + rename), so a crash never leaves a torn database. The new file
 * takes the old one's owner, group and permission bits before it is renamed
 * into place (sqlite3 itself writes in place, so they never change): a
 * change made as root must stay readable by the server running as the
 * mail uid.
 */
import { openSync, closeSync, fchmodSync, fchownSync, fsyncSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import initSqlJs, { type Database, type SqlJsStatic } from 'sql.js';
import { SqlError, buildSql, cellToString, escapeQuotesOnly, type SqlDriver, type SqlResult, type SqlText } from './driver.js';

let sqlJs: Promise<SqlJsStatic> | null = null;

export class SqliteDriver implements SqlDriver {
  readonly name = 'sqlite' as const;
  private db: Database | null = null;
  private stamp = '';

  constructor(readonly path: string) {}

  /**
   * Run `fn` on the current database, loading (or re-loading) the file first.
   * The only await is the one-time WebAssembly start; from there to the end
   * of `fn` everything is synchronous, so no other query can swap or close
   * the database between the load and its use. (Awaiting an `open()` that
   * returned the database let concurrent first queries each load the file
   * and close the copy the others were about to use: "Database closed".)
   */
  private async use<T>(fn: (db: Database) => T): Promise<T> {
    sqlJs ??= initSqlJs();
    const SQL = await sqlJs;
    return fn(this.current(SQL));
  }

  private current(SQL: SqlJsStatic): Database {
    let st;
    try {
      st = statSync(this.path);
    } catch (e) {
      throw new SqlError(`sqlite: ${this.path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
    }
    const stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    if (this.db && stamp === this.stamp) return this.db;
    this.db?.close();
    try {
      this.db = new SQL.Database(readFileSync(this.path));
    } catch (e) {
      this.db = null;
      throw new SqlError(`sqlite: ${this.path}: ${(e as Error).message}`);
    }
    this.stamp = stamp;
    return this.db;
  }

  query(text: SqlText): Promise<SqlResult> {
    return this.use((db) => this.select(db, text));
  }

  private select(db: Database, text: SqlText): SqlResult {
    const sql = buildSql(text, escapeQuotesOnly);
    try {
      const res = db.exec(sql);
      if (res.length === 0) {
        // No rows: sql.js drops column names; prepare once to keep them.
        const stmt = db.prepare(sql);
        const columns = stmt.getColumnNames();
        stmt.free();
        return { columns, rows: [] };
      }
      return { columns: res[0].columns, rows: res[0].values.map((r) => r.map(cellToString)) };
    } catch (e) {
      throw new SqlError(`sqlite: ${(e as Error).message}`);
    }
  }

  exec(text: SqlText): Promise<number> {
    return this.use((db) => this.write(db, text));
  }

  /** Synchronous from the statement to the rename: the in-memory copy and the file never diverge under a concurrent query. */
  private write(db: Database, text: SqlText): number {
    try {
      db.run(buildSql(text, escapeQuotesOnly));
    } catch (e) {
      throw new SqlError(`sqlite: ${(e as Error).message}`);
    }
    const changed = db.getRowsModified();
    const data = db.export();
    const tmp = `${this.path}.tmp.${process.pid}`;
    try {
      const old = statSync(this.path);
      rmSync(tmp, { force: true }); // a leftover of a crashed writer with this pid
      const fd = openSync(tmp, 'wx', 0o600); // never through a planted symlink
      try {
        // owner first, then the mode: fchown() clears set-id bits
        if (process.geteuid?.() === 0) fchownSync(fd, old.uid, old.gid);
        else if (old.gid !== process.getegid?.()) fchownSync(fd, -1, old.gid);
        fchmodSync(fd, old.mode & 0o7777);
        writeSync(fd, data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      fsyncDir(dirname(this.path));
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new SqlError(`sqlite: ${this.path}: ${(e as Error).message}`);
    }
    this.stamp = '';
    return changed;
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = null;
  }
}

/** Make a rename durable: the directory entry is on disk when this returns. */
function fsyncDir(dir: string): void {
  let fd: number;
  try { fd = openSync(dir, 'r'); } catch { return; }
  try { fsyncSync(fd); } catch { /* some filesystems refuse fsync on a directory */ } finally { closeSync(fd); }
}
