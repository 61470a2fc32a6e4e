/**
 * TLS client certificates as Dovecot 2.3.19 checks them (`ssl_ca`,
 * `ssl_verify_client_cert = yes`, `auth_ssl_require_client_cert = yes`,
 * `ssl_require_crl`): the same logins, with no certificate, one signed by the
 * `ssl_ca` CA, one from another CA (and, with a CRL in `ssl_ca`, a revoked
 * one), over imaps, IMAP STARTTLS, POP3 STLS and ManageSieve STARTTLS, run
 * against a private Dovecot and against Sealmail in both process models; the
 * login answers and the login processes' and auth's log lines must be the
 * same. A client whose certificate does not verify still gets through the
 * handshake (Dovecot's login processes allow an invalid one, then refuse the
 * login); `ssl_require_crl = yes` without a CRL for the CA in `ssl_ca`
 * refuses every certificate, as Dovecot does.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { freePort } from '../helpers/databases.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { Wire } from '../helpers/line-wire.js';
import { until } from '../helpers/lmtp-wire.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { tempDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';
import { openAuthClient } from '../helpers/auth-client-wire.js';
import { makeSelfSignedCert } from '../../src/server/selfsigned.js';

type Cert = 'none' | 'good' | 'other' | 'revoked';
type Proto = 'imaps' | 'imap' | 'pop3' | 'sieve';

/** A CA, a second CA, client certificates of both, one revoked, and ssl_ca files with and without the CRL. */
function makeCerts(t: TestContext, openssl: string): string {
  const dir = tempDir(t, 'tls-client-cert');
  chmodSync(dir, 0o755);
  const ssl = (...args: string[]) => {
    const r = spawnSync(openssl, args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  };
  for (const [ca, cn] of [['ca', 'Client CA'], ['otherca', 'Other CA']]) {
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${cn}`);
  }
  let serial = 1;
  for (const [name, ca] of [['good', 'ca'], ['other', 'otherca'], ['revoked', 'ca']]) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=user1');
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', String(serial++), '-out', `${name}.pem`, '-days', '2');
  }
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'crlnumber'), '01\n');
  writeFileSync(join(dir, 'ca.cnf'), `[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = ${dir}/index.txt\ncrlnumber = ${dir}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n`);
  ssl('ca', '-config', 'ca.cnf', '-revoke', 'revoked.pem', '-keyfile', 'ca.key', '-cert', 'ca.pem');
  ssl('ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', 'ca.key', '-cert', 'ca.pem', '-out', 'ca.crl');
  writeFileSync(join(dir, 'ca-crl.pem'), readFileSync(join(dir, 'ca.pem'), 'utf8') + readFileSync(join(dir, 'ca.crl'), 'utf8'));
  const server = makeSelfSignedCert('localhost');
  writeFileSync(join(dir, 'server.pem'), server.certPem);
  writeFileSync(join(dir, 'server.key'), server.keyPem, { mode: 0o644 });
  return dir;
}

interface Ports { imap: number; imaps: number; pop3: number; sieve: number }

const tlsConf = (dir: string, caFile: string, requireCrl: string) => `ssl = yes
ssl_cert = <${dir}/server.pem
ssl_key = <${dir}/server.key
ssl_ca = <${dir}/${caFile}
ssl_verify_client_cert = yes
auth_ssl_require_client_cert = yes
ssl_require_crl = ${requireCrl}
disable_plaintext_auth = no
auth_failure_delay = 0
auth_verbose = yes
log_timestamp = "%b %d %H:%M:%S "
`;

/** The test's listeners; the default pop3s and sieve ones (opened with ssl = yes) off. */
const listeners = (p: Ports) => `service imap-login {
  inet_listener imap_cc {
    port = ${p.imap}
  }
  inet_listener imaps_cc {
    port = ${p.imaps}
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3_cc {
    port = ${p.pop3}
  }
  inet_listener pop3s {
    port = 0
  }
}
service managesieve-login {
  inet_listener sieve_cc {
    port = ${p.sieve}
  }
  inet_listener sieve {
    port = 0
  }
}
`;

const plain = Buffer.from('\0user1\0pass').toString('base64');

/** One login as `cert` over `proto`: the server's answer to it (its capability list left out: other tests compare those). */
async function login(t: TestContext, dir: string, p: Ports, proto: Proto, cert: Cert): Promise<string> {
  const opts: ConnectionOptions = cert === 'none' ? {} : { cert: readFileSync(join(dir, `${cert}.pem`)), key: readFileSync(join(dir, `${cert}.key`)) };
  let w: Wire;
  let answer: string;
  if (proto === 'imaps' || proto === 'imap') {
    w = await Wire.open(t, proto === 'imaps' ? p.imaps : p.imap, /^\* OK .*\r\n/m, proto === 'imaps' ? opts : false);
    if (proto === 'imap') {
      w.send('s STARTTLS');
      await w.until(/^s OK .*\r\n/m, 'STARTTLS go-ahead');
      w = await w.upgrade(t, opts);
    }
    w.send('a LOGIN user1 pass');
    answer = (await w.until(/^a (OK|NO|BAD) .*\r\n/m, 'LOGIN answer')).replace(/\[CAPABILITY [^\]]*\]/, '[CAPABILITY …]');
    w.send('b LOGOUT');
  } else if (proto === 'pop3') {
    w = await Wire.open(t, p.pop3, /^\+OK .*\r\n/m);
    w.send('STLS');
    await w.until(/^\+OK .*\r\n/m, 'STLS go-ahead');
    w = await w.upgrade(t, opts);
    w.send('USER user1');
    await w.until(/^\+OK.*\r\n/m, 'USER');
    w.send('PASS pass');
    answer = await w.until(/^(\+OK|-ERR).*\r\n/m, 'PASS answer');
    w.send('QUIT');
  } else {
    w = await Wire.open(t, p.sieve, /^OK .*\r\n/m);
    w.send('STARTTLS');
    await w.until(/^OK .*\r\n/m, 'STARTTLS go-ahead');
    w = await w.upgrade(t, opts);
    await w.until(/^OK .*\r\n/m, 'capabilities after STARTTLS');
    w.send(`AUTHENTICATE "PLAIN" "${plain}"`);
    answer = await w.until(/^(OK|NO|BYE).*\r\n/m, 'AUTHENTICATE answer');
    w.send('LOGOUT');
  }
  await w.gone('logout');
  return answer.trim();
}

/** The login processes' and auth's lines, without timestamps, pids and session ids. */
function loginLines(log: string): string[] {
  return log.split('\n')
    .map((l) => l.replace(/^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d /, ''))
    .filter((l) => /^((imap|pop3|managesieve)-login|auth): /.test(l))
    .map((l) => l.replace(/<[A-Za-z0-9+/]{16}(?:[A-Za-z0-9+/]{6})?>/g, '<SESSION>').replace(/mpid=\d+/, 'mpid=PID').replace(/\b\d+ secs\b/g, 'N secs'));
}

/** Every case of a configuration: the answer, then the log lines it added (waited for: each case ends with one login-process line). */
async function runCases(t: TestContext, dir: string, p: Ports, cases: Array<[Proto, Cert]>, logText: () => string): Promise<string[]> {
  const out: string[] = [];
  const ends = () => loginLines(logText()).filter((l) => /^\w+-login: Info: (Login|Disconnected)/.test(l)).length;
  for (const [proto, cert] of cases) {
    const before = loginLines(logText()).length;
    const endsBefore = ends();
    const answer = await login(t, dir, p, proto, cert);
    await until(`${proto} ${cert}: its login-process line`, () => ends() > endsBefore);
    out.push(`${proto} ${cert}: ${answer}`, ...loginLines(logText()).slice(before).map((l) => `  ${l}`));
  }
  return out;
}

/**
 * Postfix's side of the auth socket (base_dir/auth-client): SMTP AUTH after
 * Postfix checked the client's certificate itself sends `valid-client-cert`;
 * the replies without and with it.
 */
async function authSocketCases(t: TestContext, path: string): Promise<string[]> {
  const a = await openAuthClient(t, path);
  const out: string[] = [];
  for (const [id, extra] of [['1', ''], ['2', '\tvalid-client-cert']]) {
    out.push(await a.auth(id, `PLAIN\tservice=smtp\tnologin\trip=127.0.0.1\tlip=127.0.0.1\tsecured${extra}\tresp=${plain}`));
  }
  a.close();
  return out;
}

const CONFIGS: Array<{ name: string; caFile: string; requireCrl: string; cases: Array<[Proto, Cert]> }> = [
  { name: 'ssl_require_crl = no', caFile: 'ca.pem', requireCrl: 'no', cases: [
    ['imaps', 'none'], ['imaps', 'good'], ['imaps', 'other'],
    ['imap', 'none'], ['imap', 'good'], ['imap', 'other'],
    ['pop3', 'none'], ['pop3', 'good'], ['sieve', 'none'], ['sieve', 'good'],
  ] },
  // the default: no CRL for the CA in ssl_ca, so no certificate of it verifies
  { name: 'ssl_require_crl = yes, no CRL', caFile: 'ca.pem', requireCrl: 'yes', cases: [['imaps', 'good']] },
  { name: 'ssl_require_crl = yes, the CRL in ssl_ca', caFile: 'ca-crl.pem', requireCrl: 'yes', cases: [['imaps', 'good'], ['imaps', 'revoked'], ['imap', 'other']] },
];

test('client certificates (ssl_ca, ssl_verify_client_cert, auth_ssl_require_client_cert, ssl_require_crl): the answers and log lines of Dovecot 2.3.19', async (t) => {
  const openssl = requireTool(t, 'openssl');
  if (!openssl) return;
  const dir = makeCerts(t, openssl);
  for (const c of CONFIGS) {
    const dp: Ports = { imap: await freePort(), imaps: await freePort(), pop3: await freePort(), sieve: await freePort() };
    const dv = setupDovecot(t, { start: true, protocols: 'imap pop3 sieve', extraConf: tlsConf(dir, c.caFile, c.requireCrl) + listeners(dp) });
    if (!dv) return;
    const want = await runCases(t, dir, dp, c.cases, () => dv.log());
    const wantAuth = await authSocketCases(t, join(dv.dir, 'base', 'auth-client'));
    assert.match(wantAuth[0], /^FAIL\t1\treason=Client didn't present valid SSL certificate$/, 'what this test assumes of the oracle');
    dv.stop();
    // what this test assumes of the oracle
    const first = want.find((l) => l.startsWith('imaps good: '));
    if (c.name === 'ssl_require_crl = yes, no CRL') assert.match(first ?? '', /NO \[ALERT\] Client didn't present valid SSL certificate/, `${c.name}: Dovecot refuses`);
    else assert.match(first ?? '', /^imaps good: a OK /, `${c.name}: Dovecot lets the certificate in`);

    for (const mode of process.getuid?.() === 0 ? ['mail_uid', 'root master'] : ['mail_uid']) {
      const sp: Ports = { imap: await freePort(), imaps: await freePort(), pop3: await freePort(), sieve: await freePort() };
      const srv = await startSealmail(t, {
        rewriteConf: (text, d) => {
          // the helper's certificate lines give way to the configuration under test
          const conf = text.replace(/^ssl(_cert|_key)? = .*\n/gm, '').replace('protocols = imap\n', `protocols = imap pop3 sieve\nlog_path = ${d}/sealmail.log\n`)
            + tlsConf(dir, c.caFile, c.requireCrl) + listeners(sp);
          return mode === 'mail_uid' ? conf : conf.replace(/^mail_[ug]id = .*\n/gm, '');
        },
        ready: (_o, d) => existsSync(join(d, 'sealmail.log')) && readFileSync(join(d, 'sealmail.log'), 'utf8').includes(`:${sp.sieve}`),
      });
      const logFile = join(srv.dir, 'sealmail.log');
      const got = await runCases(t, dir, sp, c.cases, () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''));
      assert.deepEqual(got, want, `${c.name}, ${mode}`);
      assert.deepEqual(await authSocketCases(t, join(srv.dir, 'base', 'auth-client')), wantAuth, `${c.name}, ${mode}: the auth socket`);
      await srv.stop();
    }
  }
});

test('ssl_verify_client_cert without ssl_ca: Dovecot\'s settings check refuses to start', async (t) => {
  let err = '';
  await startSealmail(t, { extraConf: 'ssl_verify_client_cert = yes\n' }).catch((e: Error) => { err = e.message; });
  assert.match(err, /doveconf: Fatal: Error in configuration file \S+dovecot\.conf: ssl_verify_client_cert set, but ssl_ca not/);
});
