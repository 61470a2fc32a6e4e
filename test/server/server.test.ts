/**
 * The sealmail process end to end: the demo instance starts from the sample
 * tree, serves IMAP on loopback (STARTTLS and implicit TLS with its generated
 * certificate, the demo user logs in over both), exits 0 on SIGTERM; a broken configuration stops it before
 * any listener opens, naming file:line.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createServer } from 'node:net';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { sealmailJs } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { spawnOwned } from '../helpers/children.js';
import { ImapFlow } from 'imapflow';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Killed with its whole process group after the test, whatever happens (children.ts). */
function startServer(t: TestContext, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawnOwned(t, process.execPath, [sealmailJs, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}

async function waitFor(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function readLine(sock: NodeJS.ReadableStream & { destroy(): void }): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\r\n');
      if (i >= 0) { resolve(buf.slice(0, i)); sock.destroy(); }
    });
    sock.on('error', reject);
  });
}

test('npm start demo: serves the demo user over IMAPS and STARTTLS, prints a login, exits 0 on SIGTERM', async (t) => {
  const dir = tempDir(t, 'demo');
  const imapPort = await freePort();
  const imapsPort = await freePort();
  const srv = startServer(t, ['--demo'], { SEALMAIL_DEMO_DIR: dir, SEALMAIL_DEMO_IMAP_PORT: String(imapPort), SEALMAIL_DEMO_IMAPS_PORT: String(imapsPort) });
  await waitFor(() => srv.output().includes('Stop with Ctrl-C'), 'the demo banner');
  const login = JSON.parse(readFileSync(join(dir, 'demo-login.json'), 'utf8'));
  assert.match(srv.output(), new RegExp(`login: +${login.user.replace('.', '\\.')}`));
  assert.match(srv.output(), new RegExp(`password: +${login.password}`));
  // The password is printed once on stdout for the newcomer, never in a log line.
  assert.ok(!srv.output().split('\n').filter((l) => /: (Info|Warning|Error|Fatal): /.test(l)).some((l) => l.includes(login.password)));

  const plain = await readLine(connect(imapPort, '127.0.0.1'));
  assert.match(plain, /^\* OK \[CAPABILITY IMAP4rev1 .*STARTTLS.*\] /);
  const cert = readFileSync(join(dir, 'ssl', 'cert.pem'), 'utf8');
  const tls = tlsConnect({ port: imapsPort, host: '127.0.0.1', ca: cert, servername: 'localhost' });
  const viaTls = await readLine(tls);
  assert.match(viaTls, /^\* OK \[CAPABILITY IMAP4rev1 /);
  assert.doesNotMatch(viaTls, /STARTTLS/);
  // the demo user logs in over IMAPS (certificate verified against the generated one) and over STARTTLS
  for (const secure of [true, false]) {
    const c = new ImapFlow({ host: '127.0.0.1', port: secure ? imapsPort : imapPort, secure, doSTARTTLS: !secure, auth: { user: login.user, pass: login.password }, logger: false, tls: { ca: cert, servername: 'localhost' } });
    await c.connect();
    const box = await c.mailboxOpen('INBOX');
    assert.ok(box.exists >= 0);
    await c.logout();
  }
  assert.ok(existsSync(join(dir, 'mailserver.sqlite')));

  srv.child.kill('SIGTERM');
  assert.equal(await srv.exited, 0);
  assert.match(srv.output(), /master: Info: Sealmail v[\d.]+ stopping \(SIGTERM\)/);
});

test('a configuration error names file:line and exits 89 before any listener opens', async (t) => {
  const dir = tempDir(t, 'badconf');
  const port = await freePort();
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `protocols = imap\nlisten = 127.0.0.1\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\nservice imap { }\n`);
  const srv = startServer(t, ['-c', conf], {});
  const code = await srv.exited;
  assert.equal(code, 89);
  assert.match(srv.output(), new RegExp(`${conf.replace(/[.]/g, '\\.')} line 8: `));
  assert.ok(!srv.output().includes('    at '), 'no stack trace');
  // Nothing listened: the port is still free.
  await new Promise<void>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
  });
});
