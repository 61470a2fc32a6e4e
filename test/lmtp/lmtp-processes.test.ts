/**
 * LMTP on every core (src/server/service-pool.ts, user-concurrency.ts):
 * with no `process_min_avail`, service lmtp runs one process per core, and
 * concurrent connections are delivered by different processes (the pid in
 * each "saved mail" log line). lmtp_user_concurrency_limit over several
 * processes: test/lmtp/limits.test.ts; in the root master mode:
 * test/server/root-master.test.ts.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { LmtpWire, until } from '../helpers/lmtp-wire.js';

async function server(t: TestContext): Promise<{ srv: SealmailServer; port: number }> {
  const port = await freePort();
  const srv = await startSealmail(t, { extraConf: `protocols = imap lmtp\nservice lmtp {\n  inet_listener lmtp {\n    port = ${port}\n  }\n}\n` });
  return { srv, port };
}

/** The pids that logged "saved mail" for `user`, in log order. */
const deliveringPids = (output: string, user: string) => [...output.matchAll(/lmtp\(([^)]+)\)<(\d+)>[^\n]*saved mail to INBOX/g)].filter((m) => m[1] === user).map((m) => Number(m[2]));
const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]);

async function deliverOn(w: LmtpWire, rcpt: string, subject: string): Promise<void> {
  assert.equal(await w.send(`MAIL FROM:<x@example.net>\r\nRCPT TO:<${rcpt}>\r\n`, /^250 2\.1\.0 .*\r\n\d{3} .*\r\n/m), '250 2.1.0 OK\r\n250 2.1.5 OK\r\n');
  await w.send('DATA\r\n', /^354 .*\r\n/m);
  assert.match(await w.send(`Subject: ${subject}\r\n\r\nbody\r\n.\r\n`, /^\d{3} .*\r\n/m), /^250 2\.0\.0 </);
}

test('by default LMTP runs in one process per core: concurrent connections are delivered by different processes', { skip: availableParallelism() < 2 ? 'one core: one LMTP process' : false }, async (t) => {
  const { srv, port } = await server(t);
  const conns = [new LmtpWire(port), new LmtpWire(port)];
  t.after(() => { for (const c of conns) c.sock.destroy(); });
  // both connected before either delivers: the master hands each to the least-loaded process
  for (const c of conns) await c.hello();
  for (const [i, c] of conns.entries()) await deliverOn(c, 'john@example.org', `from connection ${i}`);
  const pids = await until('two saved-mail lines', () => { const p = deliveringPids(srv.output(), 'john@example.org'); return p.length === 2 && p; });
  assert.notEqual(pids[0], pids[1], `both deliveries in one process (${pids[0]})\n${srv.output()}`);
  for (const p of pids) assert.equal(parentOf(p), srv.pid, `LMTP process ${p} is a child of the master`);
});
