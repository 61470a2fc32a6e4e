/**
 * A question the master asks one child over its IPC channel and the
 * child's answer, matched by id (sealadm auth cache flush, sealadm
 * penalty). A child that exits, is not connected or stays silent answers
 * `fallback`: an admin command never hangs on one process.
 */
import type { ChildProcess } from 'node:child_process';

/** A process that does not answer within this is taken to have nothing. */
const ANSWER_MS = 10_000;

let nextId = 0;
const waiting = new Map<number, (value: unknown) => void>();

export function askChild<R>(child: ChildProcess, message: (id: number) => object, fallback: R): Promise<R> {
  if (!child.connected) return Promise.resolve(fallback);
  const id = ++nextId;
  return new Promise((resolve) => {
    const done = (value: unknown) => { clearTimeout(timer); child.off('exit', gone); waiting.delete(id); resolve(value as R); };
    const gone = () => done(fallback);
    const timer = setTimeout(gone, ANSWER_MS);
    timer.unref();
    waiting.set(id, done);
    child.once('exit', gone);
    try { child.send(message(id)); } catch { done(fallback); }
  });
}

/** A child's answer to question `id`, from the master's 'message' handler. */
export function childAnswered(id: number, value: unknown): void {
  waiting.get(id)?.(value);
}
