/**
 * One TLS context per process, shared by its connections (tls-context.ts), as
 * Dovecot's imap-login and managesieve-login keep one: a client that got a
 * session ticket on one connection resumes the session on the next one
 * served by the same process (OpenSSL's ticket keys belong to the context,
 * so with a context per connection no ticket is ever accepted). Checked on
 * IMAPS, IMAP STARTTLS and ManageSieve STARTTLS, with mail_uid set (the
 * supervised service pools) and, as root, without it (the root master's
 * login processes). The resumption attempts are spread over several
 * connections because a service may have more than one process and a
 * ticket only resumes in the process that issued it. And the reload hook:
 * after setTlsMaterial() new connections are served the new certificate.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { until } from '../helpers/lmtp-wire.js';
import { makeSelfSignedCert } from '../../src/server/selfsigned.js';
import { ServerTlsContext } from '../../src/server/tls-context.js';
import { implicitTls } from '../../src/server/starttls.js';
import { simpleTlsMaterial } from '../../src/server/tls-settings.js';

type How = 'imaps' | 'imap-starttls' | 'sieve-starttls';

/** A plain connection after the server's STARTTLS go-ahead. */
async function starttls(port: number, sieve: boolean): Promise<Socket> {
  const sock = connect(port, '127.0.0.1');
  sock.on('error', () => undefined);
  let got = '';
  const onData = (d: Buffer) => { got += d.toString('latin1'); };
  sock.on('data', onData);
  await until('greeting', () => (sieve ? /^OK ".*"\r\n/m : /^\* OK .*\r\n/).test(got));
  sock.write(sieve ? 'STARTTLS\r\n' : 's STARTTLS\r\n');
  await until('STARTTLS reply', () => got.includes(sieve ? 'OK "Begin TLS negotiation now."\r\n' : 's OK Begin TLS negotiation now.\r\n'));
  sock.off('data', onData);
  return sock;
}

/** One TLS connection offering `session`: whether the server resumed it, and the ticket it sent. */
async function handshake(how: How, port: number, session?: Buffer): Promise<{ reused: boolean; ticket: Buffer | null }> {
  const socket = how === 'imaps' ? undefined : await starttls(port, how === 'sieve-starttls');
  const t: TLSSocket = tlsConnect({ host: '127.0.0.1', port, socket, rejectUnauthorized: false, session });
  let ticket: Buffer | null = null;
  let failed: Error | null = null;
  let secure = false;
  t.on('session', (s: Buffer) => { ticket = s; });
  t.on('error', (e) => { failed = e; });
  t.once('secureConnect', () => { secure = true; });
  t.on('data', () => undefined);
  try {
    await until('handshake', () => secure || failed !== null);
    if (failed) throw failed;
    // the server's NewSessionTicket follows the handshake; a command keeps the exchange going until it is read
    t.write(how === 'sieve-starttls' ? 'NOOP\r\n' : 'n NOOP\r\n');
    if (!session) await until('session ticket', () => ticket !== null || failed !== null);
    if (failed) throw failed;
    return { reused: t.isSessionReused(), ticket };
  } finally {
    t.destroy();
  }
}

async function resumes(how: How, port: number): Promise<void> {
  const first = await handshake(how, port);
  assert.equal(first.reused, false);
  assert.ok(first.ticket, `${how}: the server sent a session ticket`);
  const reused: boolean[] = [];
  for (let i = 0; i < 4; i++) reused.push((await handshake(how, port, first.ticket)).reused);
  assert.ok(reused.includes(true), `${how}: a later connection to the same process resumes the session (${reused.join(' ')})`);
}

async function serve(t: TestContext, rewrite?: (text: string) => string): Promise<{ imap: number; imaps: number; sieve: number }> {
  const sieve = await freePort();
  const srv = await startSealmail(t, {
    extraConf: `disable_plaintext_auth = no\nservice managesieve-login {\n  inet_listener sieve {\n    port = ${sieve}\n  }\n}\n`,
    rewriteConf: (text) => {
      const both = text.replace('protocols = imap\n', 'protocols = imap sieve\n');
      return rewrite ? rewrite(both) : both;
    },
  });
  return { imap: srv.imapPort, imaps: srv.imapsPort, sieve };
}

async function allResume(ports: { imap: number; imaps: number; sieve: number }): Promise<void> {
  await resumes('imaps', ports.imaps);
  await resumes('imap-starttls', ports.imap);
  await resumes('sieve-starttls', ports.sieve);
}

test('TLS sessions resume on a later connection: one context per service process', { timeout: 120_000 }, async (t) => {
  await allResume(await serve(t));
});

const root = process.getuid?.() === 0;

test('TLS sessions resume on a later connection: one context per login process (root master)', { timeout: 120_000, skip: root ? false : 'needs root (the mode is root without mail_uid)' }, async (t) => {
  await allResume(await serve(t, (text) => text.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, '')));
});

test('setTlsMaterial: connections after it get a context built from the new certificate', async (t) => {
  const [a, b] = [makeSelfSignedCert('localhost'), makeSelfSignedCert('localhost')];
  const tls = new ServerTlsContext(simpleTlsMaterial(a.certPem, a.keyPem));
  const first = tls.current();
  assert.equal(tls.current().secureContext, first.secureContext, 'one context until the material changes');
  const server = createServer((raw) => { implicitTls(raw, tls.current()).on('error', () => undefined); });
  t.after(() => server.close());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const served = () => new Promise<string>((resolve, reject) => {
    const c = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => { resolve(c.getPeerX509Certificate()!.fingerprint256); c.destroy(); });
    c.on('error', reject);
  });
  assert.equal(await served(), new X509Certificate(a.certPem).fingerprint256);
  tls.setTlsMaterial(simpleTlsMaterial(b.certPem, b.keyPem));
  assert.notEqual(tls.current().secureContext, first.secureContext);
  assert.equal(await served(), new X509Certificate(b.certPem).fingerprint256);
});
