/**
 * Real database servers for tests: MariaDB and PostgreSQL started on
 * 127.0.0.1 with temporary data directories and free ports (never the system
 * instances), the ISPmail schema from sql/ loaded, and stopped afterwards.
 * sqlite needs no server: a file made with sql.js.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { TestContext } from 'node:test';
import initSqlJs from 'sql.js';
import { repoRoot } from './paths.js';
import { findTool, inCI } from './tools.js';
import { killOwned, spawnOwned } from './children.js';

export type DbKind = 'sqlite' | 'mysql' | 'pgsql';

export interface TestDb {
  kind: DbKind;
  /** Dovecot `connect =` value */
  connect: string;
  /** Run SQL (several statements allowed). */
  exec(sql: string): Promise<void>;
  stop(): Promise<void>;
}

/** The first port the kernel hands out as a source port (ip_local_port_range). */
function ephemeralLow(): number {
  try { return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768; } catch { return 32768; }
}

const PORT_DIR = join(tmpdir(), 'sealmail-test-ports');
const reservedPorts: string[] = [];

/** Claim a port for this process: a file naming our pid (a dead owner's claim is taken over). */
function reservePort(port: number): boolean {
  const file = join(PORT_DIR, String(port));
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      if (!reservedPorts.length) process.once('exit', () => { for (const f of reservedPorts) rmSync(f, { force: true }); });
      reservedPorts.push(file);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return true; // no claims possible here: the range alone must do
      let owner = 0;
      try { owner = Number(readFileSync(file, 'utf8')); } catch { continue; }
      try { process.kill(owner, 0); return false; } catch (e) { if ((e as NodeJS.ErrnoException).code === 'EPERM') return false; }
      rmSync(file, { force: true });
    }
  }
  return false;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A port for a server a test configures and starts later. Below the
 * ephemeral range, so no outgoing connection (of this or a parallel test
 * process) can take it as its source port before the server listens
 * (EADDRINUSE under load, when a port from listen(0) was used), and claimed
 * with a file so two test processes never pick the same one.
 */
export async function freePort(): Promise<number> {
  mkdirSync(PORT_DIR, { recursive: true, mode: 0o1777 });
  const top = ephemeralLow();
  const bottom = Math.max(1024, top - 12_000);
  for (;;) {
    const port = bottom + Math.floor(Math.random() * (top - bottom));
    if (reservePort(port) && await canListen(port)) return port;
  }
}

async function waitFor(check: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const PG_BIN = '/usr/lib/postgresql/15/bin';

/** Is the server software for this kind installed? (skip reason or null) */
export function dbMissing(kind: DbKind): string | null {
  if (kind === 'sqlite') return null;
  if (kind === 'mysql') return findTool('mariadbd') && findTool('mariadb-install-db') && findTool('mariadb') ? null : 'MariaDB (mariadb-server) is not installed';
  return existsSync(`${PG_BIN}/postgres`) && findTool('psql') ? null : 'PostgreSQL 15 (postgresql) is not installed';
}

/** Skip on a developer machine, fail under CI=true. Returns false when skipped. */
export function requireDb(t: TestContext, kind: DbKind): boolean {
  const why = dbMissing(kind);
  if (!why) return true;
  if (inCI) throw new Error(`CI=true and ${why}`);
  t.skip(why);
  return false;
}

function schema(kind: DbKind): string {
  return readFileSync(join(repoRoot, 'sql', kind === 'sqlite' ? 'sqlite.sql' : kind === 'mysql' ? 'mysql.sql' : 'postgresql.sql'), 'utf8');
}

/** Files the Dovecot oracle's auth-worker (user dovecot) must read. */
export function openUp(path: string): void {
  try { chmodSync(path, 0o755); } catch { /* not ours */ }
}

async function startSqlite(dir: string): Promise<TestDb> {
  const SQL = await initSqlJs();
  const path = join(dir, 'mailserver.sqlite');
  const db = new SQL.Database();
  db.exec(schema('sqlite'));
  writeFileSync(path, Buffer.from(db.export()), { mode: 0o644 });
  db.close();
  return {
    kind: 'sqlite',
    connect: path,
    async exec(sql) {
      const d = new SQL.Database(readFileSync(path));
      d.exec(sql);
      writeFileSync(path, Buffer.from(d.export()));
      d.close();
    },
    async stop() {},
  };
}

/**
 * How the server reads '…' literals. 'backslash': a backslash escapes the
 * next character (MariaDB's default; PostgreSQL's standard_conforming_strings
 * = off). 'standard': only '' escapes a quote (MariaDB's
 * sql_mode=NO_BACKSLASH_ESCAPES; PostgreSQL's default). Unset: the server's default.
 */
export type StringsMode = 'backslash' | 'standard';

async function startMysql(dir: string, strings?: StringsMode): Promise<TestDb> {
  const data = join(dir, 'mysql');
  mkdirSync(data, { recursive: true });
  const init = spawnSync('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db'], { encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' });
  if (init.status !== 0) throw new Error(`mariadb-install-db failed: ${init.stderr}`);
  const port = await freePort();
  const sock = join(dir, 'mysql.sock');
  // own group, killed when the test process ends whatever happens (children.ts)
  const child = spawnOwned(null, 'mariadbd', ['--no-defaults', `--datadir=${data}`, `--socket=${sock}`, `--port=${port}`, '--bind-address=127.0.0.1', '--user=root', '--skip-name-resolve', '--innodb-buffer-pool-size=16M', `--pid-file=${join(dir, 'mysql.pid')}`, '--skip-log-bin',
    ...(strings === 'standard' ? ['--sql-mode=STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_BACKSLASH_ESCAPES'] : [])], { stdio: 'ignore' });
  await waitFor(() => existsSync(sock), 'mariadbd socket').catch(async (e) => { await killOwned(child); throw e; });
  const client = (sql: string, db = 'mailserver') => {
    const r = spawnSync('mariadb', ['--no-defaults', `--socket=${sock}`, '-uroot', db], { input: sql, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
    if (r.status !== 0) throw new Error(`mariadb: ${r.stderr}`);
  };
  client("CREATE DATABASE mailserver; CREATE USER 'mailserver'@'127.0.0.1' IDENTIFIED BY 'Zq8#n2Lw'; GRANT ALL ON mailserver.* TO 'mailserver'@'127.0.0.1';", 'mysql');
  client(schema('mysql'));
  return {
    kind: 'mysql',
    connect: `host=127.0.0.1 port=${port} dbname=mailserver user=mailserver password=Zq8#n2Lw`,
    async exec(sql) { client(sql); },
    async stop() { await stopChild(child); },
  };
}

async function startPgsql(dir: string, strings?: StringsMode): Promise<TestDb> {
  const data = join(dir, 'pg');
  mkdirSync(data, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  const pgUser = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const uid = Number(pgUser.stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  if (asRoot) { chmodSync(dir, 0o755); chownSync(data, uid, gid); }
  const as = (cmd: string, args: string[], opts: { input?: string } = {}) => asRoot
    ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL', ...opts })
    : spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL', ...opts });
  const init = as(`${PG_BIN}/initdb`, ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const args = ['-D', data, '-k', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off',
    ...(strings === 'backslash' ? ['-c', 'standard_conforming_strings=off', '-c', 'escape_string_warning=off'] : [])];
  // own group (runuser and postgres with its backends), killed when the test process ends whatever happens (children.ts)
  const child = asRoot ? spawnOwned(null, 'runuser', ['-u', 'postgres', '--', `${PG_BIN}/postgres`, ...args], { stdio: 'ignore' }) : spawnOwned(null, `${PG_BIN}/postgres`, args, { stdio: 'ignore' });
  await waitFor(() => existsSync(join(data, `.s.PGSQL.${port}`)), 'postgres socket').catch(async (e) => { await killOwned(child); throw e; });
  const psql = (sql: string, db = 'mailserver') => {
    const r = as('psql', ['-h', data, '-p', String(port), '-U', 'postgres', '-v', 'ON_ERROR_STOP=1', '-q', db], { input: sql });
    if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
  };
  psql("CREATE DATABASE mailserver; CREATE USER mailserver PASSWORD 'Zq8#n2Lw';", 'postgres');
  psql(schema('pgsql') + '\nGRANT ALL ON ALL TABLES IN SCHEMA public TO mailserver; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO mailserver;');
  return {
    kind: 'pgsql',
    connect: `host=127.0.0.1 port=${port} dbname=mailserver user=mailserver password=Zq8#n2Lw`,
    async exec(sql) { psql(sql + '\nGRANT ALL ON ALL TABLES IN SCHEMA public TO mailserver;'); },
    async stop() { await stopChild(child); },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => void killOwned(child), 10_000);
  await done;
  clearTimeout(timer);
  await killOwned(child); // what it forked (backends) goes too, before the caller removes the data dir
}

/** Start a database of this kind in `dir` (the caller removes dir). */
export async function startDb(kind: DbKind, dir: string, opts: { strings?: StringsMode } = {}): Promise<TestDb> {
  openUp(dir);
  if (kind === 'sqlite') return startSqlite(dir);
  if (kind === 'mysql') return startMysql(dir, opts.strings);
  return startPgsql(dir, opts.strings);
}

export function removeDir(dir: string): void {
  // a daemon that is just exiting may still drop a file in it: retry like rm -rf in a loop
  rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}
