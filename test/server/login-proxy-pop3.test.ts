/**
 * The passdb-driven POP3 login proxy (src/pop3/login-proxy.ts) on loopback
 * addresses: a Sealmail proxy on 127.0.0.1 sends each user where its
 * passwd-file row says (`proxy=y host=127.0.0.2 port=…`): a real Dovecot
 * 2.3.19 pop3 backend on 127.0.0.2 and a Sealmail backend on 127.0.0.3,
 * both trusting the proxy (login_trusted_networks: their banner offers
 * [XCLIENT]), so their logs name the real client (127.0.0.5). Bad routes: a
 * backend that is down, `proxy=y` without `host`, a route back to the proxy
 * itself, a backend that answers garbage or stalls, a `nologin` referral,
 * a password the backend refuses. The same passwd-file behind a real
 * Dovecot proxy gives the client the same replies and the proxy the same
 * log lines (differential); as root, the login processes of the
 * root-master mode give them too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { Pop3Wire } from '../helpers/pop3-client.js';
import { tempDir } from '../helpers/tmp.js';
import { fakeBackend, proxyLines } from '../helpers/login-proxy.js';
import { until } from '../helpers/lmtp-wire.js';

const CLIENT_IP = '127.0.0.5';

/** A POP3 client connected from CLIENT_IP (not the proxy's own address); the greeting read. */
async function client(port: number): Promise<Pop3Wire> {
  const w = new Pop3Wire(connect({ port, host: '127.0.0.1', localAddress: CLIENT_IP }));
  const greeting = await w.reply(false);
  assert.match(greeting, /^\+OK /);
  return w;
}

async function cmd(w: Pop3Wire, line: string): Promise<string> {
  w.send(`${line}\r\n`);
  return w.reply(false);
}


function passwdRows(p: { dovecot: number; sealmail: number; down: number; garbage: number; stall: number; self: number }): string {
  return [
    `dv@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.2 port=${p.dovecot}`,
    `sm@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.3 port=${p.sealmail}`,
    `other@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.3 port=${p.sealmail} destuser=sm@example.org`,
    `down@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.2 port=${p.down}`,
    `badpass@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.2 port=${p.dovecot} pass=wrong`,
    `nohost@example.org:{PLAIN}pass::::::proxy=y`,
    `loop@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=${p.self}`,
    `garbage@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=${p.garbage}`,
    `stall@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=${p.stall} proxy_timeout=2`,
    `ref@example.org:{PLAIN}pass::::::nologin=y host=pop2.example.org reason=Moved`,
    `local@example.org:{PLAIN}pass::::::proxy_maybe=y host=127.0.0.1 port=${p.self}`,
    '',
  ].join('\n');
}

const USERS = ['dv', 'sm', 'down', 'badpass', 'nohost', 'loop', 'garbage', 'stall', 'ref', 'ttl'];

/** What the client sees for each user's USER/PASS (and STAT after it, when it worked). */
async function transcript(port: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const user of USERS) {
    const c = await client(port);
    try {
      // ttl: a trusted client (a proxy in front) says this login has one hop left: a loop
      let r = user === 'ttl' ? await cmd(c, 'XCLIENT TTL=1') : '';
      r += await cmd(c, `USER ${user === 'ttl' ? 'sm' : user}@example.org`);
      r += await cmd(c, 'PASS pass');
      if (r.endsWith('+OK Logged in.\r\n')) r += (await cmd(c, 'STAT')).replace(/\d+ \d+/, 'n m');
      out[user] = r;
    } finally { c.close(); }
  }
  return out;
}

const TRANSCRIPT_USERS = /user=<(dv|sm|down|badpass|nohost|loop|garbage|stall|ref)@example\.org>/;


const pop3Listener = (port: number, address?: string) => `service pop3-login {\n  inet_listener pop3 {\n${address ? `    address = ${address}\n` : ''}    port = ${port}\n  }\n  inet_listener pop3s {\n    port = 0\n  }\n}\n`;

test('POP3 login proxy: routes by passdb, forwards the client with XCLIENT, refuses bad routes as Dovecot does', { timeout: 300_000 }, async (t) => {
  const dvPort = await freePort();
  const backendDv = setupDovecot(t, {
    start: true,
    protocols: 'imap pop3',
    extraConf: `disable_plaintext_auth = no\nlogin_trusted_networks = 127.0.0.0/8\nservice imap-login {\n  inet_listener imap {\n    address = 127.0.0.2\n    port = 0\n  }\n}\n${pop3Listener(dvPort, '127.0.0.2')}`,
  });
  if (!backendDv) return;
  const smPop3 = await freePort();
  const backendSm = await startSealmail(t, {
    extraConf: `login_trusted_networks = 127.0.0.0/8\ndisable_plaintext_auth = no\n${pop3Listener(smPop3)}`,
    rewriteConf: (text) => text.replace('listen = 127.0.0.1', 'listen = 127.0.0.3').replace(/^protocols = imap$/m, 'protocols = imap pop3'),
  });
  const downPort = await freePort(); // nothing listens there
  const garbagePort = await fakeBackend(t, (s) => s.write('HELLO this is not POP3\r\n'));
  const stallPort = await fakeBackend(t, () => undefined);
  const ports = { dovecot: dvPort, sealmail: smPop3, down: downPort, garbage: garbagePort, stall: stallPort };

  const files = tempDir(t, 'proxy-passwd');
  chmodSync(files, 0o755); // read by the servers' unprivileged processes
  const proxyConf = (file: string) => `passdb {\n  driver = passwd-file\n  args = ${file}\n}\n`;
  // the client's address is trusted: its XCLIENT may carry TTL, as a proxy in front would
  const common = `disable_plaintext_auth = no\nlogin_proxy_max_reconnects = 1\nauth_verbose = yes\nlogin_trusted_networks = ${CLIENT_IP}/32\n`;
  /** A Sealmail proxy with its own passwd-file (its own POP3 port is `self` there); `rootMaster`: no mail_uid, login processes apart. */
  const sealProxy = async (name: string, rootMaster: boolean): Promise<SealmailServer & { pop3Port: number }> => {
    const pop3Port = await freePort();
    writeFileSync(join(files, `${name}.passwd`), passwdRows({ ...ports, self: pop3Port }), { mode: 0o644 });
    const srv = await startSealmail(t, {
      passdb: proxyConf(join(files, `${name}.passwd`)),
      extraConf: common + pop3Listener(pop3Port),
      rewriteConf: (text) => {
        const out = text.replace(/^protocols = imap$/m, 'protocols = imap pop3');
        return rootMaster ? out.replace(/^mail_[ug]id = .*\n/gm, '') : out;
      },
    });
    return Object.assign(srv, { pop3Port });
  };
  const proxy = await sealProxy('sealmail', false);

  await t.test('each user lands on its backend, which logs the real client address', async () => {
    const c = await client(proxy.pop3Port);
    assert.equal(await cmd(c, 'USER dv@example.org'), '+OK\r\n');
    assert.equal(await cmd(c, 'PASS pass'), '+OK Logged in.\r\n', `${proxy.output()}\n${backendDv.log()}`);
    assert.match(await cmd(c, 'STAT'), /^\+OK 0 0\r\n$/);
    c.close();
    await until('the Dovecot backend\'s login line', () => /pop3-login: Info: Login: user=<dv@example\.org>, method=PLAIN, rip=127\.0\.0\.5, /.test(backendDv.log()))
      .catch((e: Error) => { throw new Error(`${e.message}\n${backendDv.log()}\n${proxy.output()}`); });
    await until('the proxy\'s line', () => /pop3-login: (?:Info: )?proxy\(dv@example\.org,127\.0\.0\.2:\d+\): Started proxying to <127\.0\.0\.2>/.test(proxy.output()));

    const s = await client(proxy.pop3Port);
    assert.equal(await cmd(s, 'USER sm@example.org'), '+OK\r\n');
    assert.equal(await cmd(s, 'PASS pass'), '+OK Logged in.\r\n');
    assert.match(await cmd(s, 'STAT'), /^\+OK 0 0\r\n$/);
    // no QUIT: the proxy's `Disconnected by client` line is compared with Dovecot's below (a QUIT races the backend's close)
    s.close();
    await until('the Sealmail backend\'s login line', () => /pop3-login: (?:Info: )?Login: user=<sm@example\.org>, method=PLAIN, rip=127\.0\.0\.5, /.test(backendSm.output()))
      .catch((e: Error) => { throw new Error(`${e.message}\n${backendSm.output()}`); });

    // AUTH PLAIN from the client, destuser: logged in on the backend as another user
    const o = await client(proxy.pop3Port);
    assert.equal(await cmd(o, `AUTH PLAIN ${Buffer.from('\0other@example.org\0pass').toString('base64')}`), '+OK Logged in.\r\n');
    o.close();
    await until('the destuser line', () => /proxy\(other@example\.org,127\.0\.0\.3:\d+\): Started proxying to <127\.0\.0\.3> as user sm@example\.org/.test(proxy.output()));
    // never served here: the proxy opened no maildrop
    assert.doesNotMatch(proxy.output(), /pop3\((dv|sm|other)@example\.org\)/);
  });

  await t.test('proxy_maybe to this very listener is served here', async () => {
    const c = await client(proxy.pop3Port);
    assert.equal(await cmd(c, 'USER local@example.org'), '+OK\r\n');
    assert.equal(await cmd(c, 'PASS pass'), '+OK Logged in.\r\n');
    c.close();
    assert.doesNotMatch(proxy.output(), /proxy\(local@example\.org/);
  });

  await t.test('bad routes: Dovecot\'s replies and log lines, nothing hangs', async () => {
    const r = await transcript(proxy.pop3Port);
    assert.equal(r.down, '+OK\r\n-ERR [SYS/TEMP] Account is temporarily unavailable.\r\n');
    // the backend refused the password the passdb gave (`pass=`): its own -ERR line
    assert.equal(r.badpass, '+OK\r\n-ERR [AUTH] Authentication failed.\r\n');
    assert.equal(r.nohost, '+OK\r\n-ERR [SYS/TEMP] Account is temporarily unavailable.\r\n');
    assert.equal(r.loop, '+OK\r\n-ERR [SYS/TEMP] Account is temporarily unavailable.\r\n');
    assert.equal(r.garbage, '+OK\r\n-ERR [SYS/TEMP] Account is temporarily unavailable.\r\n');
    assert.equal(r.stall, '+OK\r\n-ERR [SYS/TEMP] Account is temporarily unavailable.\r\n');
    assert.equal(r.ref, '+OK\r\n-ERR Moved\r\n');
    assert.equal(r.ttl, '+OK Updated\r\n+OK\r\n-ERR Account is temporarily unavailable.\r\n');
    const log = proxy.output();
    assert.match(log, /proxy\(down@example\.org,127\.0\.0\.2:\d+\): connect\(127\.0\.0\.2, \d+\) failed: Connection refused \(after \d+ secs, 1 reconnects/);
    assert.match(log, /proxy\(nohost@example\.org\): host not given/);
    assert.match(log, /proxy\(loop@example\.org\): Proxying loops to itself/);
    assert.match(log, /proxy\(garbage@example\.org,127\.0\.0\.1:\d+\): Remote server sent invalid input: Invalid banner: HELLO this is not POP3/);
    assert.match(log, /proxy\(stall@example\.org,127\.0\.0\.1:\d+\): Login timed out in state=banner/);
    assert.match(log, /proxy\(sm@example\.org,127\.0\.0\.3:\d+\): Aborting due to remote server: TTL reached zero - proxies appear to be looping\?/);
    assert.match(log, /proxy\(badpass@example\.org,127\.0\.0\.2:\d+\): Login failed: \[AUTH\] Authentication failed\./);
  });

  await t.test('the same passwd-file behind a real Dovecot proxy gives the same replies and log lines', async () => {
    const dvProxyPort = await freePort();
    const dvFile = join(files, 'dovecot.passwd');
    writeFileSync(dvFile, passwdRows({ ...ports, self: dvProxyPort }), { mode: 0o644 });
    const dvProxy = setupDovecot(t, {
      start: true,
      protocols: 'imap pop3',
      passdb: proxyConf(dvFile),
      extraConf: `${common}${pop3Listener(dvProxyPort)}`,
    });
    if (!dvProxy) return;
    const theirs = await transcript(dvProxyPort).catch((e: Error) => { throw new Error(`${e.message}\n${dvProxy.log()}`); });
    assert.deepEqual(await transcript(proxy.pop3Port), theirs);
    assert.deepEqual(proxyLines(proxy.output(), 'pop3-login', TRANSCRIPT_USERS), proxyLines(dvProxy.log(), 'pop3-login', TRANSCRIPT_USERS));
    // the root-master mode: the login processes proxy, the auth process's OK carries the route
    if (process.getuid?.() !== 0) return;
    const rootProxy = await sealProxy('root-master', true);
    assert.match(rootProxy.output(), /\(root master\)/);
    assert.deepEqual(await transcript(rootProxy.pop3Port), theirs);
    assert.match(rootProxy.output(), /proxy\(dv@example\.org,127\.0\.0\.2:\d+\): Started proxying to <127\.0\.0\.2>/);
    assert.doesNotMatch(rootProxy.output(), /pop3\((dv|sm)@example\.org\)/);
  });
});
