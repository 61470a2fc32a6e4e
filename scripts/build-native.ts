/**
 * Builds native/tcp-sockopt.c into dist/native/tcp-sockopt.node (run by
 * `npm run build`, `prepare`, `test` and `bench`, after tsc). Node's own
 * headers (<node>/../include/node, shipped with Node) and the system's C
 * compiler are all it needs; it is rebuilt only when the source is newer.
 * Without a compiler Sealmail still runs, without TCP_QUICKACK
 * (src/server/tcp-tuning.ts says so once in the log): this script then
 * warns and exits 0, so an install never fails on it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/scripts/build-native.js. */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NATIVE_SOURCE = join(root, 'native', 'tcp-sockopt.c');
export const NATIVE_ADDON = join(root, 'dist', 'native', 'tcp-sockopt.node');

/** Build the addon if missing or older than its source; returns null when done, else why not. */
export function buildNative(): string | null {
  if (existsSync(NATIVE_ADDON) && statSync(NATIVE_ADDON).mtimeMs >= statSync(NATIVE_SOURCE).mtimeMs) return null;
  const include = resolve(dirname(process.execPath), '..', 'include', 'node');
  if (!existsSync(join(include, 'node_api.h'))) return `Node's headers are not in ${include}`;
  mkdirSync(dirname(NATIVE_ADDON), { recursive: true });
  const cc = process.env.CC || 'cc';
  const r = spawnSync(cc, ['-O2', '-Wall', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=tcp_sockopt', `-I${include}`, NATIVE_SOURCE, '-o', NATIVE_ADDON], { encoding: 'utf8' });
  if (r.error) return `${cc}: ${r.error.message}`;
  if (r.status !== 0) return `${cc} failed: ${r.stderr.trim()}`;
  return null;
}

if (process.argv[1]?.endsWith('build-native.js')) {
  const why = buildNative();
  if (why) process.stderr.write(`build-native: ${why}; Sealmail runs without TCP_QUICKACK (client-side Nagle stalls stay)\n`);
}
