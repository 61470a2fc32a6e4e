/**
 * What the login-proxy tests (test/server/login-proxy*.test.ts) share: fake
 * backends on loopback, bounded waits, and the proxy's log lines normalised
 * for a comparison with Dovecot's (times, ports, sessions and byte counts
 * aside).
 */
import type { TestContext } from 'node:test';
import { createServer, type Server, type Socket } from 'node:net';
import { freePort } from './databases.js';

/** A fake backend: `greet` answers each connection (garbage, or nothing: a stall). */
export async function fakeBackend(t: TestContext, greet: (s: Socket) => void): Promise<number> {
  const port = await freePort();
  const srv: Server = createServer((s) => { s.on('error', () => undefined); greet(s); });
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
  t.after(() => { srv.close(); });
  return port;
}

/** `service`'s proxy and disconnect lines of the users `users` matches, normalised, once each. */
export function proxyLines(log: string, service: 'imap-login' | 'pop3-login', users: RegExp): string[] {
  const kind = new RegExp(`${service}: (Info|Error): (proxy\\(|Disconnected: )`);
  const lines = log.split('\n').filter((l) => users.test(l) && kind.test(l));
  return [...new Set(lines.map((l) => l.slice(l.indexOf(`${service}: `))
    .replace(/session=<[^>]*>/, 'session=<>').replace(/local=[\d.]+:\d+/, 'local=…').replace(/\(\d+\.\d+ secs\)/, '(… secs)')
    .replace(/\d+s idle, in=\d+, out=\d+/, '…s idle, in=…, out=…').replace(/after \d+ secs/, 'after … secs').replace(/in \d+ secs/, 'in … secs')))].sort();
}
