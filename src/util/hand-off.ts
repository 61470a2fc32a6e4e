/**
 * A pre-login session of a login process (managesieve-login, pop3-login)
 * giving its connection away after authentication, as Dovecot's login
 * processes hand the fd over: its own listeners go, errors are ignored from
 * here on, and nothing more is read until the new owner takes the stream.
 */
import type { Duplex } from 'node:stream';

export function stopReading(stream: Duplex): void {
  for (const ev of ['data', 'end', 'close', 'error', 'finish']) stream.removeAllListeners(ev);
  stream.on('error', () => undefined);
  stream.pause();
}
