/**
 * XCLIENT before login in POP3 and ManageSieve (src/util/xclient.ts;
 * Dovecot's pop3-login and Pigeonhole's managesieve-login cmd_xclient): a
 * proxy or webmail in login_trusted_networks names the real client, which is
 * then the address logged and penalised; anyone else is told it is not
 * trusted. The same dialogue runs against Dovecot 2.3.19 and Sealmail (both
 * process models when run as root) and the replies and the logged address
 * must be the same.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { parseXclient } from '../../src/util/xclient.js';
import { freePort } from '../helpers/databases.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { Wire } from '../helpers/line-wire.js';
import { startSealmail } from '../helpers/sealmail-server.js';

test('XCLIENT parameters: ADDR, PORT, SESSION, TTL, FORWARD as login-common reads them', () => {
  assert.deepEqual(parseXclient(['ADDR=198.51.100.9', 'port=4711', 'SESSION=abc', 'TTL=3', 'FOO=bar', 'plain']), { rip: '198.51.100.9', rport: 4711, session: 'abc', ttl: 3 });
  assert.deepEqual(parseXclient(['ADDR=[2001:db8::1]']), { rip: '2001:db8::1' });
  assert.deepEqual(parseXclient(['FORWARD=eA==']), { forward: Buffer.from('x') });
  assert.deepEqual(parseXclient([`SESSION=${'s'.repeat(65)}`]), {}, 'an over-long session id is ignored');
  for (const bad of ['ADDR=nonsense', 'ADDR=', 'PORT=0', 'PORT=65536', 'PORT=x', 'TTL=-1', 'TTL=4294967296', 'FORWARD=!!'])
    assert.equal(parseXclient(['ADDR=192.0.2.1', bad]), null, bad);
});

const POP3 = 'pop3';
const SIEVE = 'sieve';

function listeners(pop3: number, sieve: number): string {
  return `service pop3-login {\n  inet_listener pop3 {\n    port = ${pop3}\n  }\n  inet_listener pop3s {\n    port = 0\n  }\n}\n` +
    `service managesieve-login {\n  inet_listener sieve {\n    port = ${sieve}\n  }\n}\n`;
}

/** One server's replies to the dialogue, and the address its log gives each failed login. */
async function dialogue(t: TestContext, label: string, ports: { pop3: number; sieve: number }, log: () => string, trusted: boolean): Promise<string[]> {
  const out: string[] = [];
  const pop = await Wire.open(t, ports.pop3, /\r\n/);
  out.push(pop.buf.replace(/^(\+OK (?:\[XCLIENT\] )?).*\r\n$/, '$1<greeting>'));
  pop.buf = '';
  for (const cmd of ['XCLIENT ADDR=nonsense', 'XCLIENT PORT=0', 'XCLIENT ADDR=198.51.100.9 PORT=4711 SESSION=abc FOO=bar', 'XOIP 198.51.100.11', 'USER xc-pop3@example.org', 'PASS wrong']) {
    pop.send(cmd);
    out.push(`${cmd} -> ${(await pop.until(/\r\n/, `${label} ${cmd}`)).trimEnd()}`);
  }
  pop.send('QUIT');
  await pop.gone(`${label} pop3 QUIT`);

  const ms = await Wire.open(t, ports.sieve, /^OK .*\r\n/m);
  out.push(`sieve XCLIENT capability: ${/^"XCLIENT"\r$/m.test(ms.buf)}`);
  ms.buf = '';
  const plain = Buffer.from('\0xc-sieve@example.org\0wrong').toString('base64');
  for (const cmd of ['XCLIENT ADDR=nonsense', 'XCLIENT "ADDR=192.0.2.7"', 'XCLIENT ADDR=198.51.100.12 PORT=4711', `AUTHENTICATE "PLAIN" "${plain}"`]) {
    ms.send(cmd);
    out.push(`${cmd.replace(plain, '…')} -> ${(await ms.until(/^(OK|NO|BYE)\b.*\r\n/m, `${label} ${cmd}`)).trimEnd()}`);
  }
  ms.send('LOGOUT');
  await ms.gone(`${label} sieve LOGOUT`);

  const want = (user: string, ip: string) => new RegExp(`user=<${user}>, method=PLAIN, rip=${ip.replace(/\./g, '\\.')}[,)]`);
  for (const [user, ip] of [['xc-pop3@example.org', trusted ? '198.51.100.11' : '127.0.0.1'], ['xc-sieve@example.org', trusted ? '198.51.100.12' : '127.0.0.1']] as const) {
    for (const end = Date.now() + 30_000; !want(user, ip).test(log());) {
      if (Date.now() > end) throw new Error(`${label}: no failed login of ${user} from ${ip} in the log:\n${log().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return out;
}

for (const trusted of [true, false]) {
  test(`XCLIENT from ${trusted ? 'a trusted' : 'an untrusted'} peer: POP3 and ManageSieve answer and log as Dovecot`, async (t) => {
    const conf = `login_trusted_networks = ${trusted ? '127.0.0.0/8' : '192.0.2.0/24'}\ndisable_plaintext_auth = no\nauth_failure_delay = 0\n`;
    const [dp, ds] = [await freePort(), await freePort()];
    const dv = setupDovecot(t, { start: true, protocols: 'imap pop3 sieve', extraConf: conf + listeners(dp, ds) });
    if (!dv) return;
    t.after(() => dv.stop());
    const want = await dialogue(t, 'dovecot', { pop3: dp, sieve: ds }, () => dv.log(), trusted);
    assert.equal(want.some((l) => l.includes('Updated')), trusted, 'the oracle did what this test assumes');

    const modes = process.getuid?.() === 0 ? ['pools', 'root master'] : ['pools'];
    for (const mode of modes) {
      const [sp, ss] = [await freePort(), await freePort()];
      const srv = await startSealmail(t, {
        extraConf: conf + listeners(sp, ss),
        rewriteConf: (text) => {
          const c = text.replace(/^protocols = imap$/m, `protocols = imap ${POP3} ${SIEVE}`);
          return mode === 'root master' ? c.replace(/^mail_[ug]id = .*\n/gm, '') : c;
        },
      });
      if (mode === 'root master') assert.match(srv.output(), /\(root master\)/);
      assert.deepEqual(await dialogue(t, `sealmail (${mode})`, { pop3: sp, sieve: ss }, () => srv.output(), trusted), want, mode);
      await srv.stop();
    }
  });
}
