/**
 * The process-level half of Sealmail's fault boundaries (the per-session
 * half is src/util/fault.ts, inside each protocol's session):
 *
 * - `guardAccept`: a listener's connection handler whose throw or rejection
 *   (a session that cannot even be set up) ends that connection with an
 *   Error line, never the process.
 * - `installLastResort`: what escapes every boundary anyway
 *   (`uncaughtException`, `unhandledRejection`) is a bug: it is logged the
 *   way Dovecot's i_panic logs one — `Panic: <message>` and then
 *   `Error: Raw backtrace: <frame> -> <frame> …` — and the process exits
 *   with status 89 (Dovecot's FATAL_DEFAULT), so that whatever supervises it
 *   restarts it (the master restarts dead IMAP workers; systemd the master).
 *   It does not carry on: after an unknown exception the process's state can
 *   no longer be trusted, which is why Dovecot aborts too.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../log/logger.js';
import { faultText, guarded } from '../util/fault.js';

/** Dovecot's FATAL_DEFAULT exit status. */
export const EXIT_PANIC = 89;

export function installLastResort(log: Logger, exit: (code: number) => void = (c) => process.exit(c)): void {
  let dying = false;
  const panic = (kind: string) => (e: unknown) => {
    if (dying) return; // a second fault while we log the first
    dying = true;
    try {
      const err = e instanceof Error ? e : new Error(String(e));
      log.panic(`${kind}: ${err.message}`);
      const frames = (err.stack ?? '').split('\n').slice(1).map((l) => l.trim().replace(/^at /, '')).filter(Boolean);
      if (frames.length) log.error(`Raw backtrace: ${frames.join(' -> ')}`);
    } finally {
      exit(EXIT_PANIC);
    }
  };
  process.on('uncaughtException', panic('Uncaught exception'));
  process.on('unhandledRejection', panic('Unhandled promise rejection'));
}

/** `serve` as a listener's connection handler that cannot take the process down (see header). */
export function guardAccept<S extends Duplex, A extends unknown[]>(log: Logger, serve: (s: S, ...a: A) => void | Promise<void>): (s: S, ...a: A) => void {
  return (s: S, ...a: A) => guarded((e) => { log.error(`Internal error setting up a connection: ${faultText(e)}`); s.destroy(); }, serve)(s, ...a);
}
