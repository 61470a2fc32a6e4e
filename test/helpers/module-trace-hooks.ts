/** Loader hooks of module-trace.ts: record each loaded file: URL; `%p` in $MODULE_TRACE_FILE: one file per process (its pid). */
import { appendFileSync } from 'node:fs';

type Next = (url: string, context: unknown) => Promise<unknown>;

export async function load(url: string, context: unknown, next: Next): Promise<unknown> {
  const out = process.env.MODULE_TRACE_FILE?.replace('%p', String(process.pid));
  if (out && url.startsWith('file:')) appendFileSync(out, url + '\n');
  return next(url, context);
}
