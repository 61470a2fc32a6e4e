/**
 * The fault boundary of one connection. Every listener's session runs its
 * event handlers through `guarded`: a synchronous throw and a rejected
 * promise alike reach the session's own `onFault`, which logs a line and
 * ends that one session — never the process, never another session
 * (Dovecot gets this from one process per connection; Node has one event
 * loop, so the boundary is drawn around each handler instead).
 */

/** `fn` as an event handler whose throws and rejections go to `onFault` instead of escaping. */
export function guarded<A extends unknown[]>(onFault: (e: unknown) => void, fn: (...args: A) => unknown): (...args: A) => void {
  return (...args: A) => {
    try {
      const r = fn(...args);
      if (r instanceof Promise) r.catch(onFault);
    } catch (e) {
      onFault(e);
    }
  };
}

/** An error as one log line: message and the first frames of its stack (the line must stay one line). */
export function faultText(e: unknown): string {
  if (!(e instanceof Error)) return `non-error thrown: ${String(e)}`;
  const frames = (e.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim()).join(', ');
  return frames ? `${e.message} (${frames})` : e.message;
}
