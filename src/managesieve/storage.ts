/**
 * Sieve script storage the way Pigeonhole's `file` driver keeps it, so
 * Sealmail and Dovecot can share a home: `sieve = file:~/sieve;active=~/.dovecot.sieve`
 * → scripts are `~/sieve/NAME.sieve`, the active one is the symlink
 * `~/.dovecot.sieve` → `sieve/NAME.sieve`. Writes go to a temp file and are
 * renamed into place; the symlink is replaced atomically (rename over it).
 * Name rules follow Pigeonhole (no '/', no NUL/control characters, ≤ 1024).
 */
import { promises as fs } from 'node:fs';
import { join, relative, dirname, basename } from 'node:path';
import { parseLocation, type SieveUser } from '../sieve/deliver.js';

export class ScriptError extends Error {
  constructor(readonly code: 'NONEXISTENT' | 'ALREADYEXISTS' | 'ACTIVE' | 'INVALID', message: string) { super(message); }
}

export function validName(name: string): boolean {
  // eslint-disable-next-line no-control-regex
  return name.length > 0 && name.length <= 1024 && !/[/\x00-\x1f\x7f]/.test(name) && name !== '.' && name !== '..';
}

/**
 * Temp names unique across the sessions of one process (one user's Roundcube and Thunderbird
 * run side by side in the master): pid and time alone collided, and a session's symlink or
 * rename then failed with EEXIST/ENOENT (found by the ManageSieve fuzz).
 */
let tmpCounter = 0;
const uniqueSuffix = () => `${process.pid}.${Date.now()}.${++tmpCounter}`;

export class ScriptStorage {
  readonly dir: string;
  readonly activeLink: string;

  constructor(location: string, user: SieveUser) {
    const loc = parseLocation(location || 'file:~/sieve;active=~/.dovecot.sieve', user);
    this.dir = loc.path;
    this.activeLink = loc.active ?? join(user.home, '.dovecot.sieve');
  }

  private path(name: string): string {
    if (!validName(name)) throw new ScriptError('INVALID', `Invalid Sieve script name \`${name}'.`);
    return join(this.dir, name + '.sieve');
  }

  private notFound(name: string): ScriptError { return new ScriptError('NONEXISTENT', `Sieve script \`${name}' not found`); }

  /** Name of the active script, or null (no link, or a link outside the script dir). */
  async active(): Promise<string | null> {
    let target: string;
    try { target = await fs.readlink(this.activeLink); } catch { return null; }
    const abs = join(dirname(this.activeLink), target);
    if (dirname(abs) !== this.dir || !abs.endsWith('.sieve')) return null;
    return basename(abs).slice(0, -'.sieve'.length);
  }

  async list(): Promise<Array<{ name: string; active: boolean }>> {
    let names: string[];
    try { names = await fs.readdir(this.dir); } catch { return []; }
    const act = await this.active();
    // readdir order, as Pigeonhole lists them
    return names.filter((n) => n.endsWith('.sieve') && !n.startsWith('.')).map((n) => n.slice(0, -6)).map((name) => ({ name, active: name === act }));
  }

  async get(name: string): Promise<Buffer> {
    try { return await fs.readFile(this.path(name)); } catch (e) {
      if (e instanceof ScriptError) throw e;
      throw this.notFound(name);
    }
  }

  async exists(name: string): Promise<boolean> {
    try { await fs.stat(this.path(name)); return true; } catch (e) { if (e instanceof ScriptError) throw e; return false; }
  }

  async put(name: string, data: Buffer): Promise<void> {
    const p = this.path(name);
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = join(this.dir, `.${name}.${uniqueSuffix()}.tmp`);
    const fh = await fs.open(tmp, 'w', 0o600);
    try { await fh.writeFile(data); await fh.sync(); } finally { await fh.close(); }
    await fs.rename(tmp, p);
  }

  async setActive(name: string): Promise<void> {
    if (name === '') { await fs.rm(this.activeLink, { force: true }); return; }
    if (!(await this.exists(name))) throw this.notFound(name);
    // A regular file at the link path is a user's hand-made script: Pigeonhole refuses to clobber it.
    try {
      const st = await fs.lstat(this.activeLink);
      if (!st.isSymbolicLink()) throw new ScriptError('INVALID', `Active sieve script symlink ${this.activeLink} is no symlink.`);
    } catch (e) { if (e instanceof ScriptError) throw e; }
    const target = relative(dirname(this.activeLink), this.path(name));
    const tmp = `${this.activeLink}.${uniqueSuffix()}.tmp`;
    await fs.symlink(target, tmp);
    await fs.rename(tmp, this.activeLink);
  }

  async delete(name: string): Promise<void> {
    const p = this.path(name);
    if ((await this.active()) === name) throw new ScriptError('ACTIVE', 'Cannot delete the active Sieve script.');
    try { await fs.unlink(p); } catch { throw this.notFound(name); }
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.path(from);
    const dst = this.path(to);
    if (!(await this.exists(from))) throw this.notFound(from);
    if (await this.exists(to)) throw new ScriptError('ALREADYEXISTS', 'A sieve script with that name already exists.');
    const wasActive = (await this.active()) === from;
    // another session of the user may create `to` or remove `from` between the checks and here
    try { await fs.link(src, dst); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new ScriptError('ALREADYEXISTS', 'A sieve script with that name already exists.');
      if (code === 'ENOENT') throw this.notFound(from);
      throw e;
    }
    if (wasActive) await this.setActive(to);
    await fs.unlink(src).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
  }
}
