/**
 * The master's ring of recent warnings and errors, what `doveadm log errors`
 * reads from Dovecot's log process (src/log/log-error-buffer.c: the last
 * 1000 lines of type warning, error, fatal or panic, each with its time,
 * prefix and text; debug and info are not kept).
 *
 * Dovecot sees every line because every process logs through its log
 * process. Sealmail's processes write their log files themselves (inherited
 * descriptors, logger.ts), so a child also sends each such line to the
 * master over its IPC channel (reportErrorsToMaster); the master keeps the
 * ring (collectErrors) and serves it on its admin socket (LOG-ERRORS).
 *
 * Like logger.ts, this imports nothing from the project.
 */
import { onLogError, type LogError } from './logger.js';

export type { LogError } from './logger.js';

/** log-error-buffer.c LOG_ERROR_BUFFER_MAX_LINES */
export const LOG_ERROR_BUFFER_MAX_LINES = 1000;

/** child → master: one warning/error line it logged */
export type LogErrorMessage = { t: 'log-error'; e: LogError };

export class LogErrorBuffer {
  private readonly lines: LogError[] = [];

  add(e: LogError): void {
    if (this.lines.length === LOG_ERROR_BUFFER_MAX_LINES) this.lines.shift();
    this.lines.push(e);
  }

  /** Oldest first. */
  all(): LogError[] { return [...this.lines]; }
}

/** The master's ring (empty in every other process). */
export const logErrors = new LogErrorBuffer();

const isLogError = (e: unknown): e is LogError => {
  const o = e as Partial<LogError> | null;
  return !!o && typeof o.type === 'string' && typeof o.timestamp === 'number' && typeof o.prefix === 'string' && typeof o.text === 'string';
};

/** The master: keep its own lines in the ring. */
export function collectErrors(): void {
  onLogError((e) => logErrors.add(e));
}

/** The master's child 'message' handlers: a child's line, if `m` is one. */
export function takeChildError(m: { t: string; e?: unknown }): boolean {
  if (m.t !== 'log-error') return false;
  if (isLogError(m.e)) logErrors.add(m.e);
  return true;
}

/** A child of the master: send each warning/error line to it as well. */
export function reportErrorsToMaster(): void {
  onLogError((e) => {
    if (!process.connected || !process.send) return;
    try { process.send({ t: 'log-error', e } satisfies LogErrorMessage); } catch { /* the master is gone */ }
  });
}
