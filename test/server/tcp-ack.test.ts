/**
 * No response waits for a Nagle/delayed-ACK timer, whichever way the client
 * writes (issue: imaplib's APPEND took 44 ms, 40 of them the timer). Proven
 * on real TCP sockets served by the real services (ImapService as an IMAP
 * worker runs it, LMTP, ManageSieve), with the kernel's own state read by
 * getsockopt on the served socket (src/util/tcp-socket.ts), never by timing:
 *
 * - the served socket has TCP_NODELAY, on imap, imaps and after STARTTLS;
 * - TCP_QUICKACK reads 1 (the connection is not in Linux's ping-pong mode,
 *   where what the client sent is ACKed only with our next reply or by the
 *   40 ms timer) once a reply went out and once input was read: imaplib,
 *   Nagle on, sends an APPEND literal and holds its CRLF until that ACK;
 * - a command's untagged responses and its tagged reply leave in one write
 *   (one TCP segment), not one small write each.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { parseConfigText } from '../helpers/config-text.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../fuzz/mem-socket.js';
import { ImapService } from '../../src/server/imap-service.js';
import { ManageSieveService } from '../../src/server/managesieve-service.js';
import { DeliveryServices } from '../../src/server/delivery-services.js';
import { makeSelfSignedCert } from '../../src/server/selfsigned.js';
import type { ListenerSpec } from '../../src/server/listeners.js';
import { TCP_NODELAY, TCP_QUICKACK, tcpAddonError, tcpOption } from '../../src/util/tcp-socket.js';
import { buildNative } from '../../scripts/build-native.js';
import { setLogSink } from '../../src/log/logger.js';
import { simpleTlsMaterial } from '../../src/server/tls-settings.js';

const uid = process.getuid!();
const gid = process.getgid!();

async function setup(t: TestContext) {
  // the addon is built by npm run build/test; a bare tsc leaves it to us
  assert.equal(buildNative(), null, 'the TCP addon must build (cc and Node headers)');
  assert.equal(tcpAddonError, null, `the TCP addon must load: ${tcpAddonError}`);
  setLogSink(() => undefined);
  t.after(() => setLogSink(null));
  const dir = tempDir(t, 'tcp-ack');
  mkdirSync(join(dir, 'home'));
  const config = await parseConfigText(`mail_location = maildir:~/Maildir
first_valid_uid = 0
first_valid_gid = 0
auth_failure_delay = 0
disable_plaintext_auth = no
hostname = test.example
passdb {
  driver = static
  args = password=pass
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/home/%u
}
`);
  const { certPem, keyPem } = makeSelfSignedCert('localhost');
  return { config, dir, tls: simpleTlsMaterial(certPem, keyPem) };
}

/** A listener whose connections go to `serve` (the test keeps the served socket to read its options). */
async function listen(t: TestContext, serve: (raw: Socket) => void): Promise<{ port: number; served: () => Socket | null }> {
  let served: Socket | null = null;
  const server: Server = createServer((raw) => { served = raw; serve(raw); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => { served?.destroy(); server.close(); });
  const addr = server.address();
  return { port: typeof addr === 'object' && addr ? addr.port : 0, served: () => served };
}

/** Every write the served socket makes (a TLS socket's writes are the records' plaintext), in order. */
function recordWrites(s: Duplex): string[] {
  const writes: string[] = [];
  const sock = s as unknown as { _writeGeneric(writev: boolean, data: unknown, enc: string, cb: () => void): unknown };
  const orig = sock._writeGeneric;
  sock._writeGeneric = function (writev, data, enc, cb) {
    const parts = writev ? (data as { chunk: Buffer | string }[]).map((c) => c.chunk) : [data as Buffer | string];
    writes.push(parts.map((p) => (typeof p === 'string' ? p : p.toString('latin1'))).join(''));
    return orig.call(this, writev, data, enc, cb);
  };
  return writes;
}

/** A line-reading client over any duplex (plain or TLS). */
class Client {
  private buf = '';
  constructor(readonly sock: Duplex) { sock.setEncoding('latin1'); sock.on('data', (d: string) => (this.buf += d)); }
  async waitFor(re: RegExp): Promise<string> {
    assert.ok(await until(() => re.test(this.buf), 20_000), `waited for ${re}, got: ${JSON.stringify(this.buf)}`);
    const m = re.exec(this.buf)!;
    const upTo = this.buf.slice(0, m.index + m[0].length);
    this.buf = this.buf.slice(m.index + m[0].length);
    return upTo;
  }
  async cmd(line: string, tag: string): Promise<string> {
    this.sock.write(`${line}\r\n`);
    return this.waitFor(new RegExp(`(^|\\r\\n)${tag} (OK|NO|BAD)[^\\r\\n]*\\r\\n`));
  }
}

const quickAckState = (s: Socket) => tcpOption(s, TCP_QUICKACK);

/** imaplib's APPEND on a logged-in IMAP connection; `served` is the TCP socket (under TLS: the same descriptor). */
async function imapAppendChecks(c: Client, served: Duplex, writes: string[]): Promise<void> {
  await c.cmd('a LOGIN u@x pass', 'a');
  await c.cmd('b SELECT INBOX', 'b');
  await c.cmd('c NOOP', 'c');
  // a reply went out: our next ACK is not held back for the timer
  assert.equal(quickAckState(served as Socket), 1, 'TCP_QUICKACK after a reply');
  const body = Buffer.alloc(5000, 'y');
  const msg = Buffer.concat([Buffer.from('Subject: w1\r\n\r\n'), body]);
  // imaplib's way: the command, wait for `+`, the literal, then (Nagle holding it for our ACK) its CRLF
  c.sock.write(`d APPEND INBOX {${msg.length}}\r\n`);
  await c.waitFor(/^\+ OK\r\n/);
  assert.equal(quickAckState(served as Socket), 1, 'TCP_QUICKACK after the continuation');
  const before = (served as Socket).bytesRead;
  c.sock.write(msg);
  // the literal was read and handled: our ACK of it leaves now, not 40 ms later
  assert.ok(await until(() => (served as Socket).bytesRead >= before + msg.length && quickAckState(served as Socket) === 1, 20_000), 'TCP_QUICKACK after the literal was read');
  const from = writes.length;
  c.sock.write('\r\n');
  const reply = await c.waitFor(/d OK [^\r\n]*\r\n/);
  assert.match(reply, /\* 1 EXISTS\r\n\* 1 RECENT\r\n/);
  // `* 1 EXISTS`, `* 1 RECENT` and the tagged OK: one write, one segment
  assert.deepEqual(writes.slice(from), [reply], 'the whole APPEND response in one write');
}

test('IMAP (as a worker serves it): TCP_NODELAY, TCP_QUICKACK after replies and input, one write per command', async (t) => {
  const { config } = await setup(t);
  const imap = new ImapService(config, null);
  t.after(() => imap.close());
  const spec: ListenerSpec = { service: 'imap-login', name: 'imap', address: '127.0.0.1', port: 0, ssl: false };
  let writes: string[] = [];
  const l = await listen(t, (raw) => { writes = recordWrites(raw); imap.acceptHandedOff(raw, spec, 1, { admit: async () => 'ok', release: () => undefined }); });
  const c = new Client(connect(l.port, '127.0.0.1'));
  t.after(() => c.sock.destroy());
  await c.waitFor(/^\* OK [^\r\n]*\r\n/);
  assert.equal(tcpOption(l.served()!, TCP_NODELAY), 1, 'TCP_NODELAY on the served socket');
  await imapAppendChecks(c, l.served()!, writes);
});

test('IMAPS and STARTTLS: the TCP socket under TLS has TCP_NODELAY and gets TCP_QUICKACK; one TLS write per command', async (t) => {
  const { config, tls } = await setup(t);
  const imap = new ImapService(config, tls);
  t.after(() => imap.close());
  // imaps: TLS starts in the worker (implicitTls)
  const imaps: ListenerSpec = { service: 'imap-login', name: 'imaps', address: '127.0.0.1', port: 0, ssl: true };
  let tlsServed: Duplex | null = null;
  const l = await listen(t, (raw) => {
    imap.acceptHandedOff(raw, imaps, 1, { admit: async () => 'ok', release: () => undefined });
    tlsServed = [...(imap as unknown as { sessions: Set<{ socket: Duplex }> }).sessions].pop()!.socket;
  });
  const s1: TLSSocket = tlsConnect({ port: l.port, host: '127.0.0.1', rejectUnauthorized: false });
  t.after(() => s1.destroy());
  const c = new Client(s1);
  await c.waitFor(/^\* OK [^\r\n]*\r\n/);
  assert.equal(tcpOption(l.served()!, TCP_NODELAY), 1, 'TCP_NODELAY under imaps');
  const writes = recordWrites(tlsServed!);
  await imapAppendChecks(c, l.served()!, writes);

  // STARTTLS on a plain listener: the same socket, still TCP_NODELAY, still quick ACKs
  const plain: ListenerSpec = { service: 'imap-login', name: 'imap', address: '127.0.0.1', port: 0, ssl: false };
  const l2 = await listen(t, (raw) => { imap.acceptHandedOff(raw, plain, 2, { admit: async () => 'ok', release: () => undefined }); });
  const raw2 = connect(l2.port, '127.0.0.1');
  t.after(() => raw2.destroy());
  const c2 = new Client(raw2);
  await c2.waitFor(/^\* OK [^\r\n]*\r\n/);
  await c2.cmd('s STARTTLS', 's');
  raw2.removeAllListeners('data');
  const s2 = tlsConnect({ socket: raw2, rejectUnauthorized: false });
  await new Promise<void>((r) => s2.once('secureConnect', () => r()));
  const c3 = new Client(s2);
  await c3.cmd('a LOGIN u@x pass', 'a');
  assert.equal(tcpOption(l2.served()!, TCP_NODELAY), 1, 'TCP_NODELAY after STARTTLS');
  assert.equal(quickAckState(l2.served()!), 1, 'TCP_QUICKACK after a reply over STARTTLS');
});

test('ManageSieve and LMTP: TCP_NODELAY and TCP_QUICKACK once a reply went out', async (t) => {
  const { config } = await setup(t);
  const sieve = new ManageSieveService(config, null);
  t.after(() => sieve.close());
  const spec: ListenerSpec = { service: 'managesieve-login', name: 'sieve', address: '127.0.0.1', port: 0, ssl: false };
  const l = await listen(t, (raw) => sieve.acceptHandedOff(raw, spec, 1, { admit: async () => 'ok', release: () => undefined }));
  const c = new Client(connect(l.port, '127.0.0.1'));
  t.after(() => c.sock.destroy());
  await c.waitFor(/OK "[^"]*"\r\n/);
  c.sock.write('NOOP\r\n');
  await c.waitFor(/OK "NOOP Completed"\r\n/);
  assert.equal(tcpOption(l.served()!, TCP_NODELAY), 1, 'ManageSieve: TCP_NODELAY');
  assert.equal(quickAckState(l.served()!), 1, 'ManageSieve: TCP_QUICKACK after a reply');

  const delivery = new DeliveryServices(config);
  t.after(() => delivery.close());
  let writes: string[] = [];
  const l2 = await listen(t, (raw) => { writes = recordWrites(raw); delivery.acceptHandedOff(raw, { service: 'lmtp', name: 'lmtp', address: '127.0.0.1', port: 0, ssl: false }); });
  const m = new Client(connect(l2.port, '127.0.0.1'));
  t.after(() => m.sock.destroy());
  await m.waitFor(/^220 [^\r\n]*\r\n/);
  m.sock.write('LHLO client\r\n');
  await m.waitFor(/250 PIPELINING\r\n/);
  assert.equal(tcpOption(l2.served()!, TCP_NODELAY), 1, 'LMTP: TCP_NODELAY');
  assert.equal(quickAckState(l2.served()!), 1, 'LMTP: TCP_QUICKACK after a reply');
  // a pipelined MAIL and RCPT are answered in one write, as lib-smtp's corked ostream answers them
  const from = writes.length;
  m.sock.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<u@x>\r\n');
  const replies = await m.waitFor(/250 2\.1\.5 [^\r\n]*\r\n/);
  assert.match(replies, /^250 2\.1\.0 [^\r\n]*\r\n250 2\.1\.5/);
  assert.deepEqual(writes.slice(from), [replies], 'MAIL and RCPT replies in one write');
});
