/**
 * The trusted edge (server/haproxy.ts, imap/commands/prelogin.ts): the
 * PROXY protocol v1/v2 on `haproxy = yes` listeners from
 * `haproxy_trusted_networks`, and a `login_trusted_networks` client's ID
 * naming the real client. Checked against Dovecot 2.3.19 with the same
 * headers: the same error lines, and the forwarded address in the login
 * lines (so the penalty and fail2ban see the client, not the proxy).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { parseProxyHeader } from '../../src/server/haproxy.js';
import { freePort } from '../helpers/databases.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { ImapLine } from '../helpers/imap-line.js';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';

const v2 = (cmd: number, fam: number, body: Buffer) => {
  const h = Buffer.alloc(16);
  Buffer.from('0d0a0d0a000d0a515549540a', 'hex').copy(h);
  h[12] = 0x20 | cmd;
  h[13] = fam;
  h.writeUInt16BE(body.length, 14);
  return Buffer.concat([h, body]);
};
const v2ip4 = (src: string, dst: string, sport: number, dport: number, tlv = Buffer.alloc(0)) => {
  const b = Buffer.alloc(12);
  src.split('.').forEach((o, i) => { b[i] = Number(o); });
  dst.split('.').forEach((o, i) => { b[4 + i] = Number(o); });
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return v2(1, 0x11, Buffer.concat([b, tlv]));
};

test('PROXY header parser: v1 and v2 as master-service-haproxy.c reads them', () => {
  const ok = parseProxyHeader(Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 50000 143\r\nA1 NOOP'), '127.0.0.1');
  assert.deepEqual(ok, { kind: 'ok', consumed: 44, addr: { rip: '203.0.113.7', lip: '192.0.2.1', rport: 50000, lport: 143, ssl: false } });
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'), 'x'), { kind: 'ok', consumed: 15, addr: {} });
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP4 203.0'), 'x'), { kind: 'more' });
  assert.deepEqual(parseProxyHeader(Buffer.from('PRO'), 'x'), { kind: 'more' });
  const bad = (s: string | Buffer) => { const r = parseProxyHeader(typeof s === 'string' ? Buffer.from(s) : s, '127.0.0.1'); return r.kind === 'fail' ? r.text : r.kind; };
  assert.equal(bad('A1 LOGIN x y\r\n'), 'haproxy: Client disconnected: Failed to read valid HAproxy data (rip=127.0.0.1)');
  assert.equal(bad('PROXY TCP5 a b 1 2\r\n'), "haproxy(v1): Client disconnected: Unknown proxied protocol (protocol=`TCP5', rip=127.0.0.1)");
  assert.equal(bad('PROXY TCP4 ::1 127.0.0.1 1 2\r\n'), "haproxy(v1): Client disconnected: Proxied remote address is invalid (address=`::1', rip=127.0.0.1)");
  assert.equal(bad('PROXY TCP4 1.2.3.4 127.0.0.1 0 2\r\n'), "haproxy(v1): Client disconnected: Proxied remote port is invalid (port=`0', rip=127.0.0.1)");
  assert.equal(bad('PROXY TCP4 1.2.3.4 127.0.0.1 1 2 3\r\n'), "haproxy(v1): Client disconnected: Header line has spurius extra field (field=`3', rip=127.0.0.1)");

  const four = parseProxyHeader(v2ip4('198.51.100.4', '192.0.2.9', 40000, 993), 'x');
  assert.deepEqual(four, { kind: 'ok', consumed: 28, addr: { rip: '198.51.100.4', lip: '192.0.2.9', rport: 40000, lport: 993, ssl: false } });
  const sslTlv = Buffer.from([0x20, 0x00, 0x05, 0x01, 0, 0, 0, 0]);
  const withSsl = parseProxyHeader(v2ip4('198.51.100.4', '192.0.2.9', 40000, 993, sslTlv), 'x');
  assert.equal(withSsl.kind === 'ok' && withSsl.addr.ssl, true);
  const six = Buffer.alloc(36);
  six[15] = 1; six[31] = 2; six.writeUInt16BE(1, 32); six.writeUInt16BE(2, 34);
  six.writeUInt16BE(0x2001, 0); six.writeUInt16BE(0x0db8, 2);
  const r6 = parseProxyHeader(v2(1, 0x21, six), 'x');
  assert.deepEqual(r6.kind === 'ok' && r6.addr, { ssl: false, rip: '2001:db8::1', lip: '::2', rport: 1, lport: 2 });
  assert.deepEqual(parseProxyHeader(v2(0, 0, Buffer.alloc(0)), 'x'), { kind: 'ok', consumed: 16, addr: {} });
  assert.equal(bad(v2(1, 0x12, Buffer.alloc(12))), 'haproxy(v2): Client disconnected: Not using TCP (type=02, rip=127.0.0.1)');
  assert.equal(bad(v2(1, 0x11, Buffer.alloc(4))), 'haproxy(v2): Client disconnected: IPv4 data is incomplete (rip=127.0.0.1)');
  assert.equal(bad(v2(2, 0x11, Buffer.alloc(12))), 'haproxy(v2): Client disconnected: Invalid command (cmd=02, rip=127.0.0.1)');
  assert.equal(bad(v2ip4('1.1.1.1', '2.2.2.2', 1, 2, Buffer.from([0x20, 0x00]))), 'haproxy(v2): Client disconnected: Invalid TLV: get_tlv(0) failed: Truncated data (cmd=01, rip=127.0.0.1)');
  const huge = v2(1, 0x11, Buffer.alloc(12));
  huge.writeUInt16BE(2000, 14);
  assert.equal(bad(huge), 'haproxy: Client disconnected: Too long header (rip=127.0.0.1)');
});

/** Connect, send `head` first (a PROXY header), then read the greeting (TLS when asked). */
async function viaProxy(port: number, head: Buffer | string, tls = false): Promise<ImapLine> {
  const raw: Socket = netConnect(port, '127.0.0.1');
  await new Promise<void>((r, j) => { raw.once('connect', () => r()); raw.once('error', j); });
  raw.write(head);
  const sock = tls ? tlsConnect({ socket: raw, rejectUnauthorized: false }) : raw;
  const l = new ImapLine(sock as Socket);
  await l.until(/^\* OK .*\r\n/, 'greeting');
  return l;
}

async function closedWithoutGreeting(port: number, head: Buffer | string): Promise<string> {
  const raw = netConnect(port, '127.0.0.1');
  let got = '';
  raw.setEncoding('latin1');
  raw.on('data', (d: string) => { got += d; });
  raw.on('error', () => undefined);
  await new Promise<void>((r) => raw.once('connect', () => r()));
  raw.write(head);
  await new Promise<void>((r) => raw.once('close', () => r()));
  return got;
}

async function untilLog(what: () => string, re: RegExp, label: string): Promise<string> {
  const end = Date.now() + 30_000;
  for (;;) {
    const m = re.exec(what());
    if (m) return m[0];
    if (Date.now() > end) throw new Error(`no ${label} in the log:\n${what().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function haproxyConf(port: number, sslPort: number, trusted: string): string {
  // the proxied client is neither local nor trusted: its plaintext LOGIN must be allowed to reach auth
  return `haproxy_trusted_networks = ${trusted}
login_trusted_networks = 127.0.0.0/8
disable_plaintext_auth = no
service imap-login {
  inet_listener imap_haproxy {
    port = ${port}
    haproxy = yes
  }
  inet_listener imaps_haproxy {
    port = ${sslPort}
    ssl = yes
    haproxy = yes
  }
}
`;
}

test('Sealmail and Dovecot behind a PROXY-protocol proxy: the forwarded client is the one logged; bad headers get the same error lines', async (t) => {
  const [sp, ssp, dp, dsp] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const srv: SealmailServer = await startSealmail(t, { extraConf: haproxyConf(sp, ssp, '127.0.0.1/32') });
  const dv = setupDovecot(t, { start: true, extraConf: haproxyConf(dp, dsp, '127.0.0.1/32').replace(/^service imap-login \{\n/m, 'ssl = no\nservice imap-login {\n').replace(/  inet_listener imaps_haproxy \{[^}]*\}\n/, '') });
  if (!dv) return;
  t.after(() => dv.stop());

  for (const [label, port, log] of [['sealmail', sp, () => srv.output()], ['dovecot', dp, () => dv.log()]] as const) {
    const c = await viaProxy(port, `PROXY TCP4 203.0.113.7 127.0.0.1 50000 ${port}\r\n`);
    assert.match(await c.cmd('a', 'LOGIN nobody@example.org wrong'), /^a NO /m, label);
    c.close();
    await untilLog(log, /user=<nobody@example\.org>, method=PLAIN, rip=203\.0\.113\.7, lip=127\.0\.0\.1/, `${label}: the forwarded address`);
    for (const [head, text] of [
      ['PROXY TCP4 nonsense 127.0.0.1 1 2\r\n', "haproxy(v1): Client disconnected: Proxied remote address is invalid (address=`nonsense', rip=127.0.0.1)"],
      ['A1 LOGIN x y\r\n', 'haproxy: Client disconnected: Failed to read valid HAproxy data (rip=127.0.0.1)'],
    ] as const) {
      assert.equal(await closedWithoutGreeting(port, head), '', `${label}: no greeting before a valid header`);
      await untilLog(log, new RegExp(`imap-login: Error: ${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), `${label}: ${text}`);
    }
  }
  // TLS after a v2 header sent in the same segment as nothing else: the TLS handshake is read after it
  const tlsc = await viaProxy(ssp, v2ip4('198.51.100.4', '127.0.0.1', 40000, ssp), true);
  assert.match(await tlsc.cmd('b', 'LOGIN tls@example.org pass'), /^b OK /m);
  tlsc.close();
  await untilLog(() => srv.output(), /user=<tls@example\.org>, method=PLAIN, rip=198\.51\.100\.4/, 'the v2 address after TLS');
});

test('a PROXY header from a peer outside haproxy_trusted_networks: "Client not trusted", as Dovecot', async (t) => {
  const [sp, ssp, dp] = [await freePort(), await freePort(), await freePort()];
  const srv = await startSealmail(t, { extraConf: haproxyConf(sp, ssp, '192.0.2.0/24') });
  const dv = setupDovecot(t, { start: true, extraConf: haproxyConf(dp, 0, '192.0.2.0/24') });
  if (!dv) return;
  t.after(() => dv.stop());
  for (const [label, port, log] of [['sealmail', sp, () => srv.output()], ['dovecot', dp, () => dv.log()]] as const) {
    assert.equal(await closedWithoutGreeting(port, 'PROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\n'), '', label);
    await untilLog(log, /imap-login: Warning: haproxy: Client not trusted \(rip=127\.0\.0\.1\)/, label);
  }
});

test('login_trusted_networks: a trusted client\'s first ID names the real client, an untrusted one\'s is ignored, as in Dovecot', async (t) => {
  for (const trusted of [true, false]) {
    const conf = `login_trusted_networks = ${trusted ? '127.0.0.0/8' : '192.0.2.0/24'}\n`;
    const srv = await startSealmail(t, { extraConf: conf });
    const dport = await freePort();
    const dv = setupDovecot(t, { start: true, extraConf: `${conf}service imap-login {\n  inet_listener imap_test {\n    port = ${dport}\n  }\n}\n` });
    if (!dv) return;
    t.after(() => dv.stop());
    const ports = [['sealmail', srv.imapPort, () => srv.output()], ['dovecot', dport, () => dv.log()]] as const;
    for (const [label, port, log] of ports) {
      const c = await ImapLine.open(port);
      assert.match(await c.cmd('i', 'ID ("x-originating-ip" "198.51.100.9" "x-originating-port" "4711" "name" "webmail")'), /^i OK /m);
      // a second ID changes nothing (imap-login's id_logged)
      assert.match(await c.cmd('j', 'ID ("x-originating-ip" "198.51.100.10")'), /^j OK /m);
      assert.match(await c.cmd('a', `LOGIN who-${trusted}@example.org wrong`), /^a NO /m);
      c.close();
      const want = trusted ? '198\\.51\\.100\\.9' : '127\\.0\\.0\\.1';
      await untilLog(log, new RegExp(`user=<who-${trusted}@example\\.org>, method=PLAIN, rip=${want},`), `${label} trusted=${trusted}`);
    }
    await srv.stop();
  }
});

test('root master (no mail_uid, as root): the login process reads the PROXY header; the forwarded client logs in over plain and TLS and its session is served by the mail process', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async (t) => {
  const [sp, ssp] = [await freePort(), await freePort()];
  const srv = await startSealmail(t, {
    extraConf: haproxyConf(sp, ssp, '127.0.0.1/32'),
    rewriteConf: (text) => text.replace(/^mail_[ug]id = .*\n/gm, ''),
  });
  assert.match(srv.output(), /\(root master\)/);
  // refused headers end their connections and nothing else
  for (let i = 0; i < 3; i++) assert.equal(await closedWithoutGreeting(sp, 'PROXY TCP4 bad\r\n'), '');
  const c = await viaProxy(sp, `PROXY TCP4 203.0.113.8 127.0.0.1 50000 ${sp}\r\n`);
  assert.match(await c.cmd('a', 'LOGIN root-plain@example.org pass'), /^a OK /m);
  assert.match(await c.cmd('b', 'SELECT INBOX'), /^b OK /m);
  c.close();
  await untilLog(() => srv.output(), /Login: user=<root-plain@example\.org>, method=PLAIN, rip=203\.0\.113\.8/, 'the forwarded login');
  const s = await viaProxy(ssp, v2ip4('198.51.100.5', '127.0.0.1', 40000, ssp), true);
  assert.match(await s.cmd('a', 'LOGIN root-tls@example.org pass'), /^a OK /m);
  assert.match(await s.cmd('b', 'NOOP'), /^b OK /m);
  s.close();
  await untilLog(() => srv.output(), /Login: user=<root-tls@example\.org>, method=PLAIN, rip=198\.51\.100\.5/, 'the forwarded TLS login');
});
