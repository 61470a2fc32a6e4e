/**
 * External programs the tests use as oracles or peers (doveconf, doveadm,
 * mariadbd, postgres, postfix …). On a developer's machine a missing one skips
 * the test with a visible reason; with CI=true it is a failure, because CI
 * installs everything it needs (.ci/run).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';

const SEARCH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of a program, or null. */
export function findTool(name: string): string | null {
  if (name.includes('/')) return existsSync(name) ? name : null;
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...SEARCH]) {
    if (dir && existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return null;
}

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Use inside a test: returns the tool path, or skips (developer machine) /
 * throws (CI) when it is missing. Returns null only when the test was skipped.
 */
export function requireTool(t: TestContext, name: string): string | null {
  const p = findTool(name);
  if (p) return p;
  const why = `${name} is not installed (apt-get install it, or run .ci/run)`;
  if (inCI) throw new Error(`CI=true and ${why}`);
  t.skip(why);
  return null;
}

/** Same check for a whole file: an options object for test()/describe(). */
export function toolOrSkip(name: string): { skip?: string } {
  if (findTool(name) || inCI) return {};
  return { skip: `${name} is not installed (apt-get install it, or run .ci/run)` };
}

/** A synchronous tool run, bounded: a hung tool blocks the event loop, where no test timeout can act. */
export function run(cmd: string, args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { input: opts.input, env: opts.env ?? process.env, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 120_000, killSignal: 'SIGKILL' });
}
