/**
 * `base_dir/master.pid`, as Dovecot's master keeps it (src/master/main.c):
 * checked at start — a file naming a live process other than us stops the
 * start with "Dovecot is already running with PID …" (exit 89); an empty
 * file is logged ("Empty PID file in …, overriding") and replaced; a dead
 * pid is stale and replaced — then written with our pid and a newline
 * (mode 0644), and removed at a clean stop. `doveadm reload/stop` scripts
 * and `sealadm reload/stop` read it to find the master. adminFiles() sets
 * it up with the admin socket (admin-socket.ts) for both server modes.
 */
import { chownSync, mkdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:net';
import type { DovecotConfig } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import { resolveGroup, resolveUser } from '../util/passwd.js';
import { adminSocketPath, closeAdminSocket, openAdminSocket, type AdminTarget } from './admin-socket.js';

export const MASTER_PID_FILE_NAME = 'master.pid';

export function masterPidPath(config: DovecotConfig): string {
  return join(config.get('base_dir') || '/run/dovecot', MASTER_PID_FILE_NAME);
}

/** A pid file's pid and whether that process is alive (pid_file_read: our own pid counts as not running). */
export function readPidFile(path: string): { pid: number | null; empty: boolean } {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { pid: null, empty: false };
    throw new Error(`open(${path}) failed: ${(e as Error).message}`);
  }
  if (!text.length) return { pid: null, empty: true };
  const t = text.endsWith('\n') ? text.slice(0, -1) : text;
  if (!/^[0-9]{1,10}$/.test(t)) return { pid: null, empty: false };
  const pid = Number(t);
  if (pid === process.pid || pid <= 0) return { pid: null, empty: false };
  try { process.kill(pid, 0); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return { pid: null, empty: false };
  }
  return { pid, empty: false };
}

/**
 * Check and write the pid file (as root, before anything is bound). Throws
 * Dovecot's fatal text when another master is alive; `warn` gets the
 * empty-file line. `owner`: who may truncate it at stop when the master has
 * given up root by then and so cannot unlink it from a root-owned base_dir.
 */
export function createPidFile(path: string, warn: (line: string) => void, owner?: { uid: number; gid: number }): void {
  const r = readPidFile(path);
  if (r.empty) warn(`Empty PID file in ${path}, overriding`);
  if (r.pid !== null) throw new Error(`Dovecot is already running with PID ${r.pid} (read from ${path})`);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${process.pid}\n`, { mode: 0o644 });
  if (owner) chownSync(path, owner.uid, owner.gid);
}

/**
 * At a clean stop: remove it. A master that has given up root may not unlink
 * in a root-owned base_dir; it empties the file instead (Dovecot then reads
 * "Empty PID file", not running).
 */
export function removePidFile(path: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() !== String(process.pid)) return; // another master's now
    unlinkSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') { try { truncateSync(path, 0); } catch { /* left for the next start's liveness check */ } }
  }
}

/** The mail uid:gid the pool-mode master drops to (undefined: not root, nothing to drop). */
function dropIds(config: DovecotConfig): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const u = resolveUser(config.get('mail_uid'));
  if (!u) return undefined;
  const g = config.get('mail_gid') ? resolveGroup(config.get('mail_gid')) : u.gid;
  return { uid: u.uid, gid: g ?? u.gid };
}

/**
 * master.pid (Dovecot's refusal when another master is alive: logged fatal,
 * exit 89) and the admin socket, as root before anything is bound.
 * `dropsRoot`: the master gives root up to mail_uid (it may then only empty
 * master.pid at stop). stop() undoes both at a clean stop.
 */
export async function adminFiles(config: DovecotConfig, log: Logger, target: () => AdminTarget | null, dropsRoot: boolean): Promise<{ stop(): void }> {
  const pidPath = masterPidPath(config);
  try { createPidFile(pidPath, (l) => log.error(l), dropsRoot ? dropIds(config) : undefined); } catch (e) {
    log.fatal((e as Error).message);
    process.exit(89);
  }
  const sockPath = adminSocketPath(config);
  let server: Server | null = null;
  try { server = await openAdminSocket(sockPath, target); } catch (e) { log.warn(`${sockPath}: ${(e as Error).message} (sealadm who/kick unavailable)`); }
  return { stop: () => { closeAdminSocket(server, sockPath); removePidFile(pidPath); } };
}
