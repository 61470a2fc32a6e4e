/**
 * LMTP's limits as Dovecot 2.3's lmtp applies them, against a real Sealmail
 * over TCP: the client idle timeout (lmtp-client.c CLIENT_IDLE_TIMEOUT_MSECS,
 * 5 minutes; shortened here with the test hook SEALMAIL_TEST_LMTP_IDLE_MS)
 * answers `421 4.4.2 <host> Disconnected for inactivity`, closes, logs
 * lib-smtp's disconnect reason and drops a half-received message's spool;
 * `lmtp_user_concurrency_limit` refuses a RCPT beyond the user's limit with
 * `451 4.3.0 <rcpt> Too many concurrent deliveries for user` until a
 * delivery of that user is done, counted over the connections of every LMTP
 * process (the master's count); a message bigger than anything a size
 * limit would allow is delivered (lmtp has no message size limit).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { lmtpDeliver, markerMessage } from '../helpers/lmtp-kill.js';
import { LmtpWire, until } from '../helpers/lmtp-wire.js';

const HOST = 'mx.example.test';

/** `service`: more settings of `service lmtp`. */
async function server(t: TestContext, extra = '', env: Record<string, string> = {}, service = ''): Promise<{ srv: SealmailServer; port: number }> {
  const port = await freePort();
  // the server inherits the environment: the hook is set only while it starts
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    const srv = await startSealmail(t, { extraConf: `protocols = imap lmtp\nhostname = ${HOST}\n${extra}service lmtp {\n  inet_listener lmtp {\n    port = ${port}\n  }\n${service}}\n` });
    return { srv, port };
  } finally {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  }
}

test('an idle client is disconnected with 421 4.4.2, in any state, and its half-received message dropped', async (t) => {
  const { srv, port } = await server(t, '', { SEALMAIL_TEST_LMTP_IDLE_MS: '1000' });
  const idle = new LmtpWire(port);
  t.after(() => idle.sock.destroy());
  await until('greeting', () => /^220 /m.test(idle.text));
  await idle.send('LHLO client.example\r\n', /^250 PIPELINING\r\n/m);
  await until('the idle disconnect', () => idle.closed);
  assert.ok(idle.text.endsWith(`\r\n421 4.4.2 ${HOST} Disconnected for inactivity\r\n`), idle.text);
  await until('the log line', () => srv.output().includes('Disconnect from 127.0.0.1: Disconnected for inactivity (state=READY)'));

  // mid-DATA, past the in-memory part: the spool file goes with the connection
  const data = new LmtpWire(port);
  t.after(() => data.sock.destroy());
  await until('greeting', () => /^220 /m.test(data.text));
  // one write, so no round trip of ours can look like idleness
  data.sock.write(`LHLO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<john@example.org>\r\nDATA\r\nSubject: idle\r\n\r\n${`${'x'.repeat(200)}\r\n`.repeat(1000)}`);
  await until('the idle disconnect in DATA', () => data.closed);
  assert.ok(data.text.endsWith(`\r\n421 4.4.2 ${HOST} Disconnected for inactivity\r\n`), data.text);
  await until('the log line', () => srv.output().includes('Disconnected for inactivity (unfinished DATA command) (state=DATA)'));
  const spoolFds = () => readdirSync(`/proc/${srv.pid}/fd`).filter((fd) => { try { return readlinkSync(`/proc/${srv.pid}/fd/${fd}`).includes('/dovecot.lmtp.'); } catch { return false; } });
  await until('the spool closed', () => spoolFds().length === 0);
});

test('lmtp_user_concurrency_limit: a RCPT beyond the user\'s limit is refused until a delivery is done, over the connections of every LMTP process', async (t) => {
  // two LMTP processes whatever the core count: a and b are handed to different ones (least-loaded), and still share john's count
  const { port } = await server(t, 'lmtp_user_concurrency_limit = 1\n', {}, '  process_min_avail = 2\n');
  const a = new LmtpWire(port);
  const b = new LmtpWire(port);
  t.after(() => { a.sock.destroy(); b.sock.destroy(); });
  await a.hello();
  await b.hello();
  assert.equal(await a.send('MAIL FROM:<x@example.net>\r\nRCPT TO:<john@example.org>\r\n', /^250 2\.1\.5 .*\r\n/m), '250 2.1.5 OK\r\n');
  await b.send('MAIL FROM:<x@example.net>\r\n', /^250 .*\r\n/m);
  assert.equal(await b.send('RCPT TO:<john+tag@example.org>\r\n', /^\d{3} .*\r\n/m), '451 4.3.0 <john+tag@example.org> Too many concurrent deliveries for user\r\n');
  // another user is not limited by john's deliveries
  assert.equal(await b.send('RCPT TO:<jane@example.org>\r\n', /^\d{3} .*\r\n/m), '250 2.1.5 OK\r\n');
  await a.send('DATA\r\n', /^354 .*\r\n/m);
  await a.send('Subject: one\r\n\r\nbody\r\n.\r\n', /^250 2\.0\.0 <john@example\.org> .*\r\n/m);
  assert.equal(await b.send('RCPT TO:<john@example.org>\r\n', /^\d{3} .*\r\n/m), '250 2.1.5 OK\r\n');
  // RSET gives the slot back too
  assert.equal(await a.send('MAIL FROM:<x@example.net>\r\nRCPT TO:<john@example.org>\r\n', /^\d{3} .*\r\n\d{3} .*\r\n/m), '250 2.1.0 OK\r\n451 4.3.0 <john@example.org> Too many concurrent deliveries for user\r\n');
  await b.send('RSET\r\n', /^250 .*\r\n/m);
  assert.equal(await a.send('RCPT TO:<john@example.org>\r\n', /^\d{3} .*\r\n/m), '250 2.1.5 OK\r\n');
  // and so does a dropped connection
  a.sock.destroy();
  await b.send('MAIL FROM:<x@example.net>\r\n', /^250 .*\r\n/m);
  // the server notices the drop on its own time: ask again until it has
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await b.send('RCPT TO:<john@example.org>\r\n', /^\d{3} .*\r\n/m);
    if (r.startsWith('250')) break;
    assert.equal(r, '451 4.3.0 <john@example.org> Too many concurrent deliveries for user\r\n');
    assert.ok(Date.now() < deadline, 'the slot of a dropped connection is never released');
    await new Promise((res) => setTimeout(res, 50));
  }
});

test('no message size limit: lmtp sets lib-smtp\'s max_message_size to unlimited, so a 65 MB message is delivered', async (t) => {
  const { srv, port } = await server(t);
  assert.ok(await lmtpDeliver(port, 'john@example.org', markerMessage('huge', 65 * 1024 * 1024), 300_000), srv.output().slice(-2000));
  const dir = join(srv.home('john@example.org'), 'Maildir', 'new');
  const files = readdirSync(dir);
  assert.equal(files.length, 1);
  assert.ok(statSync(join(dir, files[0])).size > 64 * 1024 * 1024, "stored with LF line ends, still past the old 64 MB cap");
});
