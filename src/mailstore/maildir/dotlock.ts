/**
 * Dovecot's dotlock protocol (lib/file-dotlock.c, dotlock_use_excl = yes):
 * `<file>.lock` with content `<pid>:<host>` without newline, created
 * atomically (temp file + link(), EEXIST when held), removed with unlink(). A lock is stale when its pid is on this
 * host and dead, or when neither the lock nor the protected file changed for
 * `staleMs` (120 s). Waiting polls until `timeoutMs`, then fails with
 * LOCKTIMEOUT (the caller proceeds read-only, as Dovecot does).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { MailStoreError, ioError } from '../errors.js';
import { localHost } from './filename.js';

export interface DotlockOptions {
  timeoutMs?: number;
  staleMs?: number;
}

export interface Dotlock {
  path: string;
  /** Keeps the lock fresh during long operations (Dovecot touches every 10 s). */
  touch(): Promise<void>;
  release(): Promise<void>;
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

async function mtimeMs(path: string): Promise<number> {
  try { return (await fsp.stat(path)).mtimeMs; } catch { return 0; }
}

async function isStale(lockPath: string, protectedPath: string, staleMs: number): Promise<boolean> {
  let content: string;
  try { content = await fsp.readFile(lockPath, 'utf8'); } catch { return false; }
  const m = /^(\d+):(.*)$/.exec(content);
  if (m && m[2] === localHost() && !pidAlive(Number(m[1]))) return true;
  const newest = Math.max(await mtimeMs(lockPath), await mtimeMs(protectedPath));
  return newest > 0 && Date.now() - newest > staleMs;
}

/**
 * The lock appears with its content or not at all (temp file + link(), which
 * fails with EEXIST like O_EXCL): a process killed half-way must not leave
 * an empty lock, whose owner could never be found dead (it would block
 * everyone for the 120 s stale timeout).
 */
async function createWithContent(lockPath: string, content: string): Promise<void> {
  const tmp = join(dirname(lockPath), `.temp.${localHost()}.${process.pid}.${randomBytes(6).toString('hex')}`);
  await fsp.writeFile(tmp, content, { mode: 0o600 });
  try { await fsp.link(tmp, lockPath); } finally { await fsp.unlink(tmp).catch(() => {}); }
}

export async function acquireDotlock(protectedPath: string, opts: DotlockOptions = {}): Promise<Dotlock> {
  const lockPath = protectedPath + '.lock';
  const timeoutMs = opts.timeoutMs ?? 122_000;
  const staleMs = opts.staleMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    try {
      await createWithContent(lockPath, `${process.pid}:${localHost()}`);
      let released = false;
      return {
        path: lockPath,
        async touch() { const now = new Date(); await fsp.utimes(lockPath, now, now).catch(() => {}); },
        async release() {
          if (released) return;
          released = true;
          await fsp.unlink(lockPath).catch((e) => { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('releasing lock', lockPath, e); });
        },
      };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw ioError('creating lock', lockPath, e);
    }
    if (await isStale(lockPath, protectedPath, staleMs)) {
      // override: remove and retry at once (another waiter may win the race; fine)
      await fsp.unlink(lockPath).catch(() => {});
      continue;
    }
    if (Date.now() >= deadline) {
      let holder = '';
      try { holder = await fsp.readFile(lockPath, 'utf8'); } catch { /* gone */ }
      throw new MailStoreError('LOCKTIMEOUT', `timed out waiting for ${lockPath}${holder ? ` (held by ${holder})` : ''}`, lockPath);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}

export async function withDotlock<T>(protectedPath: string, opts: DotlockOptions, fn: (lock: Dotlock) => Promise<T>): Promise<T> {
  const lock = await acquireDotlock(protectedPath, opts);
  try { return await fn(lock); } finally { await lock.release(); }
}

/**
 * Atomically replace `path` with `data`: write `<path>.tmp`-style temp file,
 * fsync, rename. Used for files whose writers hold their own dotlock.
 */
export async function writeAtomic(path: string, data: Buffer | string, tmpPath = path + '.tmp', mode = 0o600): Promise<void> {
  try {
    const fh = await fsp.open(tmpPath, 'w', mode);
    try { await fh.writeFile(data); await fh.sync(); } finally { await fh.close(); }
    await fsp.rename(tmpPath, path);
  } catch (e) {
    await fsp.unlink(tmpPath).catch(() => {});
    throw ioError('writing', path, e);
  }
}
