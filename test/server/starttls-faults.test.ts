/**
 * A STARTTLS that fails ends that one connection, as in Pigeonhole and
 * Dovecot's imap-login: after `STARTTLS` and bytes that are no TLS
 * ClientHello, or a client that rejects the self-signed certificate during
 * the handshake (Roundcube's managesieve plugin with peer verification), the
 * server process is still there and IMAP, LMTP, the auth socket, auth-userdb,
 * quota-status and ManageSieve each answer a fresh client. Before the fix the
 * ManageSieve case was an unhandled rejection in the master: every service died.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { connect, type Socket } from 'node:net';
import { allAnswer, startLiveServer, type LiveServer } from '../fuzz/live-server.js';

/** A plain connection that has just been told `OK … Begin TLS negotiation now.` */
async function afterStarttls(port: number, greeting: string, command: string, ok: string): Promise<Socket> {
  const sock = connect({ host: '127.0.0.1', port });
  let got = '';
  const onData = (d: Buffer) => { got += d.toString('latin1'); };
  sock.on('data', onData);
  sock.on('error', () => undefined);
  const wait = async (s: string) => {
    const end = Date.now() + 15_000;
    while (!got.includes(s)) { if (Date.now() > end) throw new Error(`no ${s}: ${got}`); await new Promise((r) => setTimeout(r, 10)); }
  };
  await wait(greeting);
  sock.write(command);
  await wait(ok);
  sock.off('data', onData);
  return sock;
}

/** Resolves when the connection is gone (the server must end it: a bounded wait, not a sleep). */
function closed(sock: Socket): Promise<void> {
  return new Promise((r, j) => {
    if (sock.destroyed) { r(); return; }
    const t = setTimeout(() => j(new Error('the server kept a failed TLS connection open')), 15_000);
    sock.once('close', () => { clearTimeout(t); r(); });
  });
}

async function garbage(port: number, greeting: string, command: string, ok: string): Promise<void> {
  const sock = await afterStarttls(port, greeting, command, ok);
  sock.write('this is not a ClientHello\r\nLOGOUT\r\n');
  await closed(sock);
}

async function rejectingClient(port: number, greeting: string, command: string, ok: string): Promise<void> {
  const sock = await afterStarttls(port, greeting, command, ok);
  const err = await new Promise<Error | null>((r) => {
    const t = tlsConnect({ socket: sock, servername: 'localhost', rejectUnauthorized: true });
    t.once('secureConnect', () => { r(null); t.destroy(); });
    t.once('error', (e) => { r(e); t.destroy(); });
  });
  assert.ok(err, 'the client refuses the self-signed certificate');
  await closed(sock);
}

/** Half a ClientHello, then a TCP reset instead of the rest (a client killed mid-handshake). */
async function resetMidHandshake(port: number, greeting: string, command: string, ok: string): Promise<void> {
  const sock = await afterStarttls(port, greeting, command, ok);
  sock.write(Buffer.from('16030100c4010000c00303', 'hex'));
  await new Promise((r) => setImmediate(r));
  sock.resetAndDestroy();
}

/**
 * STARTTLS with a command pipelined behind it in the same packet (what a man in the middle
 * injects, CVE-2011-0411), then a real handshake: the injected command must not run in TLS.
 */
async function injected(port: number, greeting: string, command: string, ok: string, inject: string, probe: string, probeOk: string): Promise<string> {
  const sock = connect({ host: '127.0.0.1', port });
  sock.on('error', () => undefined);
  let plain = '';
  const onData = (d: Buffer) => { plain += d.toString('latin1'); };
  sock.on('data', onData);
  const wait = async (get: () => string, s: string) => {
    const end = Date.now() + 15_000;
    while (!get().includes(s)) { if (Date.now() > end) throw new Error(`no ${s}: ${get()}`); await new Promise((r) => setTimeout(r, 10)); }
  };
  await wait(() => plain, greeting);
  sock.write(command + inject);
  await wait(() => plain, ok);
  sock.off('data', onData);
  const t = tlsConnect({ socket: sock, servername: 'localhost', rejectUnauthorized: false });
  let secure = '';
  t.on('data', (d: Buffer) => { secure += d.toString('latin1'); });
  t.on('error', () => undefined);
  await new Promise<void>((r) => t.once('secureConnect', () => r()));
  t.write(probe);
  await wait(() => secure, probeOk);
  t.destroy();
  return plain + secure;
}

function alive(h: LiveServer): void {
  assert.doesNotThrow(() => process.kill(h.srv.pid, 0), `the server process is alive:\n${h.srv.output()}`);
  assert.doesNotMatch(h.srv.output(), /Panic:|Fatal:/);
}

test('STARTTLS failures end only their own connection', { timeout: 180_000 }, async (t) => {
  const h = await startLiveServer(t);
  await allAnswer(h);
  const sieve: [string, string, string] = ['OK "Sealmail test ready."', 'STARTTLS\r\n', 'OK "Begin TLS negotiation now."'];
  const imap: [string, string, string] = ['* OK', 'a STARTTLS\r\n', 'a OK'];

  await t.test('ManageSieve: STARTTLS then garbage', async () => {
    await garbage(h.sievePort, ...sieve);
    await allAnswer(h);
    alive(h);
  });
  await t.test('ManageSieve: STARTTLS then a client that rejects the certificate', async () => {
    await rejectingClient(h.sievePort, ...sieve);
    await allAnswer(h);
    alive(h);
  });
  await t.test('IMAP: STARTTLS then garbage', async () => {
    await garbage(h.srv.imapPort, ...imap);
    await allAnswer(h);
    alive(h);
  });
  await t.test('IMAP: STARTTLS then a client that rejects the certificate', async () => {
    await rejectingClient(h.srv.imapPort, ...imap);
    await allAnswer(h);
    alive(h);
  });
  await t.test('ManageSieve and IMAP: STARTTLS, half a ClientHello, then a reset', async () => {
    for (let i = 0; i < 10; i++) {
      await resetMidHandshake(h.sievePort, ...sieve);
      await resetMidHandshake(h.srv.imapPort, ...imap);
    }
    await allAnswer(h);
    alive(h);
  });
  await t.test('a command pipelined behind STARTTLS is not run inside TLS', async () => {
    const sieveOut = await injected(h.sievePort, ...sieve, 'NOOP "injected"\r\n', 'NOOP "probe"\r\n', 'OK (TAG "probe")');
    assert.doesNotMatch(sieveOut, /injected/);
    const imapOut = await injected(h.srv.imapPort, ...imap, 'i1 NOOP\r\n', 'p1 NOOP\r\n', 'p1 OK');
    assert.doesNotMatch(imapOut, /i1 /);
  });
  await t.test('many failing handshakes in parallel leave every service up', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? garbage : rejectingClient)(i % 4 < 2 ? h.sievePort : h.srv.imapPort, ...(i % 4 < 2 ? sieve : imap))));
    await allAnswer(h);
    alive(h);
  });
  await t.test('each failed handshake is one Dovecot-shaped Info line, no Error', async () => {
    const shape = /^(managesieve-login|imap-login): Info: Disconnected \(no auth attempts in \d+ secs\): user=<>, rip=127\.0\.0\.1, lip=127\.0\.0\.1, TLS handshaking: (SSL_accept\(\) failed: error:[0-9A-F]+:SSL routines:[^:]*:[a-z0-9 ]+(: SSL alert number \d+)?|Connection closed|\S.*), session=<[A-Za-z0-9+/]{16}>$/;
    const lines = () => h.srv.output().split('\n').filter((l) => l.includes('TLS handshaking'));
    const end = Date.now() + 15_000;
    while (!(lines().some((l) => l.startsWith('imap-login')) && lines().some((l) => l.startsWith('managesieve-login'))) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.ok(lines().some((l) => l.startsWith('imap-login')) && lines().some((l) => l.startsWith('managesieve-login')), h.srv.output());
    for (const l of lines()) assert.match(l, shape);
    assert.ok(lines().some((l) => /SSL_accept\(\) failed: error:[0-9A-F]+:SSL routines:[^:]*:wrong version number, session=/.test(l)), lines().join('\n'));
    assert.doesNotMatch(h.srv.output(), /: Error: /);
});
});
