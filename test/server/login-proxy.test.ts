/**
 * The passdb-driven IMAP login proxy (src/imap/login-proxy.ts) on loopback
 * addresses: a Sealmail proxy on 127.0.0.1 sends each user where its
 * passwd-file row says (`proxy=y host=127.0.0.2 port=…`): a real Dovecot
 * 2.3.19 backend on 127.0.0.2 and a Sealmail backend on 127.0.0.3, both
 * trusting the proxy (login_trusted_networks), so their logs name the real
 * client (127.0.0.5, forwarded with ID's x-originating-ip). Bad routes: a
 * backend that is down, `proxy=y` without `host`, a route back to the proxy
 * itself, a backend that answers garbage or stalls, a `nologin` referral.
 * The same passwd-file behind a real Dovecot proxy gives the client the same
 * replies (differential).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { ImapLine } from '../helpers/imap-line.js';
import { tempDir } from '../helpers/tmp.js';
import { fakeBackend, proxyLines } from '../helpers/login-proxy.js';
import { until } from '../helpers/lmtp-wire.js';

const CLIENT_IP = '127.0.0.5';

/** An IMAP client connected from CLIENT_IP (not the proxy's own address). */
async function client(port: number): Promise<ImapLine> {
  const l = new ImapLine(connect({ port, host: '127.0.0.1', localAddress: CLIENT_IP }));
  await l.until(/^\* OK .*\r\n/, 'greeting');
  return l;
}


/** The passwd-file rows: one user per route; `self` is the proxy's own port (the loop). */
function passwdRows(p: { dovecot: number; sealmail: number; sealmailTls: number; down: number; garbage: number; stall: number; dies: number; self: number }): string {
  return [
    `dv@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.2 port=${p.dovecot}`,
    `sm@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.3 port=${p.sealmail}`,
    `other@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.3 port=${p.sealmail} destuser=sm@example.org`,
    `tls@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.3 port=${p.sealmailTls} ssl=any-cert`,
    `stls@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.3 port=${p.sealmail} starttls=any-cert`,
    `strict@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.3 port=${p.sealmailTls} ssl=yes`,
    `down@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.2 port=${p.down}`,
    `badpass@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.2 port=${p.dovecot} pass=wrong`,
    `nohost@example.org:{PLAIN}pass::::::proxy=y`,
    `loop@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=${p.self}`,
    `garbage@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=${p.garbage}`,
    `stall@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=${p.stall} proxy_timeout=2`,
    `ref@example.org:{PLAIN}pass::::::nologin=y host=imap2.example.org reason=Moved`,
    `dies@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=${p.dies}`,
    `local@example.org:{PLAIN}pass::::::proxy_maybe=y host=127.0.0.1 port=${p.self}`,
    '',
  ].join('\n');
}

/** What the client sees for each user's LOGIN: the tagged reply (and a command after it, when it worked). */
async function transcript(port: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const user of ['dv', 'sm', 'down', 'badpass', 'nohost', 'loop', 'garbage', 'stall', 'ref', 'ttl']) {
    const c = await client(port);
    try {
      // ttl: a trusted client (a proxy in front) says this login has one hop left: a loop
      if (user === 'ttl') await c.cmd('i', 'ID ("x-proxy-ttl" "1")');
      let r = (await c.cmd('a', `LOGIN ${user === 'ttl' ? 'sm' : user}@example.org pass`)).replace(/\[CAPABILITY [^\]]*\] /, '[CAPABILITY …] ');
      if (/^a OK/m.test(r)) r += (await c.cmd('b', 'SELECT INBOX')).split('\r\n').filter((l) => l.startsWith('b '))[0].replace(/ \([\d.]+(?: \+ [\d.]+)* secs\)\.$/, '.');
      out[user] = r;
    } finally { c.close(); }
  }
  return out;
}

const TRANSCRIPT_USERS = /user=<(dv|sm|down|badpass|nohost|loop|garbage|stall|ref)@example\.org>/;


test('IMAP login proxy: routes by passdb, forwards the client address, refuses bad routes as Dovecot does', { timeout: 240_000 }, async (t) => {
  const dvPort = await freePort();
  const backendDv = setupDovecot(t, {
    start: true,
    extraConf: `disable_plaintext_auth = no\nlogin_trusted_networks = 127.0.0.0/8\nservice imap-login {\n  inet_listener imap {\n    address = 127.0.0.2\n    port = ${dvPort}\n  }\n}\n`,
  });
  if (!backendDv) return;
  const backendSm = await startSealmail(t, {
    extraConf: 'login_trusted_networks = 127.0.0.0/8\ndisable_plaintext_auth = no\n',
    rewriteConf: (text) => text.replace('listen = 127.0.0.1', 'listen = 127.0.0.3'),
  });
  const downPort = await freePort(); // nothing listens there
  const garbagePort = await fakeBackend(t, (s) => s.write('HELLO this is not IMAP\r\n'));
  const stallPort = await fakeBackend(t, () => undefined);
  // a backend that logs the user in and goes away at the first command after it
  const diesPort = await fakeBackend(t, (s) => {
    s.write('* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n');
    let buf = '';
    let loggedIn = false;
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (!loggedIn && /^L LOGIN /m.test(buf)) { loggedIn = true; s.write('* CAPABILITY IMAP4rev1\r\nC OK done\r\nL OK Logged in\r\n'); }
      if (/^b NOOP/m.test(buf)) s.destroy();
    });
  });
  const ports = { dovecot: dvPort, sealmail: backendSm.imapPort, sealmailTls: backendSm.imapsPort, down: downPort, garbage: garbagePort, stall: stallPort, dies: diesPort };

  const files = tempDir(t, 'proxy-passwd');
  chmodSync(files, 0o755); // read by the servers' unprivileged processes
  const proxyConf = (file: string) => `passdb {\n  driver = passwd-file\n  args = ${file}\n}\n`;
  // the client's address is trusted: its ID may carry x-proxy-ttl, as a proxy in front would
  const common = `disable_plaintext_auth = no\nlogin_proxy_max_reconnects = 1\nauth_verbose = yes\nlogin_trusted_networks = ${CLIENT_IP}/32\n`;
  /** A Sealmail proxy with its own passwd-file (its own port is `self` there); `rootMaster`: no mail_uid, login processes apart. */
  const sealProxy = (name: string, rootMaster: boolean) => startSealmail(t, {
    passdb: proxyConf(join(files, `${name}.passwd`)),
    extraConf: common,
    rewriteConf: (text) => {
      const self = /inet_listener imap \{\n\s*port = (\d+)/.exec(text)![1];
      writeFileSync(join(files, `${name}.passwd`), passwdRows({ ...ports, self: Number(self) }), { mode: 0o644 });
      return rootMaster ? text.replace(/^mail_[ug]id = .*\n/gm, '') : text;
    },
  });
  const proxy = await sealProxy('sealmail', false);

  await t.test('each user lands on its backend, which logs the real client address', async () => {
    const c = await client(proxy.imapPort);
    const r = await c.cmd('a', 'LOGIN dv@example.org pass');
    assert.match(r, /^a OK \[CAPABILITY IMAP4rev1 [^\]]*\] Logged in\r\n$/);
    assert.match(await c.cmd('b', 'SELECT INBOX'), /b OK \[READ-WRITE\] Select completed/);
    c.close();
    await until('the Dovecot backend\'s login line', () => /imap-login: Info: Login: user=<dv@example.org>, method=PLAIN, rip=127\.0\.0\.5, lip=127\.0\.0\.1/.test(backendDv.log())).catch((e: Error) => { throw new Error(`${e.message}\n${backendDv.log()}`); });
    await until('the proxy\'s line', () => /proxy\(dv@example\.org,127\.0\.0\.2:\d+\): Started proxying to <127\.0\.0\.2>/.test(proxy.output()));

    const s = await client(proxy.imapPort);
    assert.match(await s.cmd('a', 'LOGIN sm@example.org pass'), /^a OK \[CAPABILITY IMAP4rev1 [^\]]*\] Logged in\r\n$/);
    assert.match(await s.cmd('b', 'SELECT INBOX'), /b OK \[READ-WRITE\] Select completed/);
    s.close();
    await until('the Sealmail backend\'s login line', () => /imap-login: (?:Info: )?Login: user=<sm@example\.org>, method=PLAIN, rip=127\.0\.0\.5, lip=127\.0\.0\.1/.test(backendSm.output()));

    // destuser: logged in on the backend as another user
    const o = await client(proxy.imapPort);
    assert.match(await o.cmd('a', 'LOGIN other@example.org pass'), /^a OK /);
    o.close();
    await until('the destuser line', () => /Started proxying to <127\.0\.0\.3> as user sm@example\.org/.test(proxy.output()));
  });

  await t.test('ssl=any-cert and starttls=any-cert reach the backend over TLS; ssl=yes checks its certificate', async () => {
    for (const user of ['tls', 'stls']) {
      const c = await client(proxy.imapPort);
      assert.match(await c.cmd('a', `LOGIN ${user}@example.org pass`), /^a OK \[CAPABILITY IMAP4rev1 [^\]]*\] Logged in\r\n$/, proxy.output().split('\n').filter((l) => l.includes(`${user}@`)).join('\n'));
      assert.match(await c.cmd('b', 'SELECT INBOX'), /b OK \[READ-WRITE\] Select completed/);
      c.close();
    }
    await until('the TLS logins on the backend', () => /Login: user=<tls@example\.org>[^\n]*TLS/.test(backendSm.output()) && /Login: user=<stls@example\.org>[^\n]*TLS/.test(backendSm.output()));
    // the backend's self-signed certificate is not trusted: the login fails as a backend that is down
    const c = await client(proxy.imapPort);
    assert.equal(await c.cmd('a', 'LOGIN strict@example.org pass'), 'a NO [UNAVAILABLE] Account is temporarily unavailable.\r\n');
    c.close();
  });

  await t.test('proxy_maybe to this very listener is served here', async () => {
    const c = await client(proxy.imapPort);
    assert.match(await c.cmd('a', 'LOGIN local@example.org pass'), /^a OK \[CAPABILITY [^\]]*\] Logged in\r\n$/);
    assert.doesNotMatch(proxy.output(), /proxy\(local@example\.org/);
    c.close();
  });

  await t.test('a pipelined command after LOGIN reaches the backend', async () => {
    const c = await client(proxy.imapPort);
    c.sock.write('a LOGIN sm@example.org pass\r\nb NOOP\r\n');
    const r = await c.until(/b OK [^\r\n]*\r\n/, 'the pipelined NOOP');
    assert.match(r, /^a OK [^\r\n]*\r\nb OK NOOP completed/);
    c.close();
  });

  await t.test('bad routes: Dovecot\'s replies and log lines, nothing hangs', async () => {
    const r = await transcript(proxy.imapPort);
    assert.equal(r.down, 'a NO [UNAVAILABLE] Account is temporarily unavailable.\r\n');
    // the backend refused the password the passdb gave (`pass=`): Dovecot's generic text, whatever the backend said
    assert.equal(r.badpass, 'a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n');
    assert.equal(r.nohost, 'a NO [UNAVAILABLE] Account is temporarily unavailable.\r\n');
    assert.equal(r.loop, 'a NO [UNAVAILABLE] Account is temporarily unavailable.\r\n');
    assert.equal(r.garbage, 'a NO [UNAVAILABLE] Account is temporarily unavailable.\r\n');
    assert.equal(r.stall, 'a NO [UNAVAILABLE] Account is temporarily unavailable.\r\n');
    assert.equal(r.ref, 'a NO [REFERRAL imap://ref%40example.org;AUTH=PLAIN@imap2.example.org/] Moved\r\n');
    assert.equal(r.ttl, 'a NO [SERVERBUG] Account is temporarily unavailable.\r\n');
    const log = proxy.output();
    assert.match(log, /proxy\(down@example\.org,127\.0\.0\.2:\d+\): connect\(127\.0\.0\.2, \d+\) failed: Connection refused \(after \d+ secs, 1 reconnects/);
    assert.match(log, /proxy\(nohost@example\.org\): host not given/);
    assert.match(log, /proxy\(loop@example\.org\): Proxying loops to itself/);
    assert.match(log, /proxy\(garbage@example\.org,127\.0\.0\.1:\d+\): Remote server sent invalid input: Invalid banner: HELLO this is not IMAP/);
    assert.match(log, /proxy\(stall@example\.org,127\.0\.0\.1:\d+\): Login timed out in state=\/none/);
    assert.match(log, /proxy\(sm@example\.org,127\.0\.0\.3:\d+\): Aborting due to remote server: TTL reached zero - proxies appear to be looping\?/);
  });

  await t.test('a backend that goes away mid-session: the client is disconnected, the proxy logs it, others carry on', async () => {
    const other = await client(proxy.imapPort);
    assert.match(await other.cmd('a', 'LOGIN sm@example.org pass'), /^a OK /);
    const c = await client(proxy.imapPort);
    assert.match(await c.cmd('a', 'LOGIN dies@example.org pass'), /^a OK \[CAPABILITY IMAP4rev1\] Logged in\r\n$/);
    c.sock.write('b NOOP\r\n');
    await until('the client\'s disconnect', () => c.sock.destroyed || c.sock.readableEnded);
    await until('the proxy\'s line', () => /proxy\(dies@example\.org,127\.0\.0\.1:\d+\): Disconnected by server \(\d+s idle, in=\d+, out=\d+\)/.test(proxy.output()));
    assert.match(await other.cmd('b', 'NOOP'), /b OK NOOP completed/);
    other.close();
    c.close();
  });

  await t.test('the same passwd-file behind a real Dovecot proxy gives the same replies', async () => {
    const dvProxyPort = await freePort();
    const dvFile = join(files, 'dovecot.passwd');
    writeFileSync(dvFile, passwdRows({ ...ports, self: dvProxyPort }), { mode: 0o644 });
    const dvProxy = setupDovecot(t, {
      start: true,
      passdb: proxyConf(dvFile),
      extraConf: `${common}service imap-login {\n  inet_listener imap {\n    port = ${dvProxyPort}\n  }\n}\n`,
    });
    if (!dvProxy) return;
    const theirs = await transcript(dvProxyPort).catch((e: Error) => { throw new Error(`${e.message}\n${dvProxy.log()}`); });
    assert.deepEqual(await transcript(proxy.imapPort), theirs);
    // and the same log lines (times, ports, sessions and byte counts aside)
    assert.deepEqual(proxyLines(proxy.output(), 'imap-login', TRANSCRIPT_USERS), proxyLines(dvProxy.log(), 'imap-login', TRANSCRIPT_USERS));
    // the root-master mode: the login processes proxy, the auth process's OK carries the route
    if (process.getuid?.() !== 0) return;
    const rootProxy = await sealProxy('root-master', true);
    assert.match(rootProxy.output(), /\(root master\)/);
    assert.deepEqual(await transcript(rootProxy.imapPort), theirs);
    assert.match(rootProxy.output(), /proxy\(dv@example\.org,127\.0\.0\.2:\d+\): Started proxying to <127\.0\.0\.2>/);
  });
});
