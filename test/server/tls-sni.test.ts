/**
 * TLS as Dovecot configures it (src/server/tls-settings.ts, tls-context.ts):
 * `local_name` sections give SNI names their own certificates (`*.`
 * wildcards, several names per section), `ssl_alt_cert` serves an RSA
 * certificate to a client that cannot take the ECDSA one, `ssl_cipher_list`
 * and `ssl_curve_list` bound what a handshake may use. The same probes run
 * against Dovecot 2.3.19 on the same files and must pick the same
 * certificate; then a reload with a broken certificate keeps the old one and
 * names the file.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { makeSelfSignedCert } from '../../src/server/selfsigned.js';
import { freePort } from '../helpers/databases.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { tempDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';
import { connect as netConnect } from 'node:net';

/** The certificate a TLS handshake with these options shows, or the handshake's error. */
function probe(port: number, opts: ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...opts });
    const timer = setTimeout(() => { s.destroy(); resolve('timeout'); }, 20_000);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? 'none';
      s.destroy();
      resolve(fp);
    });
    s.once('error', () => { clearTimeout(timer); resolve('handshake failed'); });
  });
}

/** IMAP STARTTLS with an SNI name: the certificate shown after it. */
function starttlsProbe(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const raw = netConnect(port, '127.0.0.1');
    const timer = setTimeout(() => { raw.destroy(); reject(new Error('STARTTLS probe timed out')); }, 20_000);
    let buf = '';
    let asked = false;
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (!asked && buf.includes('\r\n')) { asked = true; buf = ''; raw.write('s STARTTLS\r\n'); }
      if (!/^s OK[^\r]*\r\n$/m.test(buf)) return;
      raw.off('data', onData);
      const s = tlsConnect({ socket: raw, servername, rejectUnauthorized: false });
      s.once('secureConnect', () => { clearTimeout(timer); resolve(s.getPeerX509Certificate()?.fingerprint256 ?? ''); s.destroy(); });
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
    };
    raw.on('data', onData);
    raw.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

interface Certs { dir: string; names: Map<string, string> }

function makeCerts(t: TestContext, openssl: string): Certs {
  const dir = tempDir(t, 'tls-sni');
  chmodSync(dir, 0o755);
  const names = new Map<string, string>();
  for (const [file, cn] of [['default', 'localhost'], ['a', 'mail.a.test'], ['b', 'wild.b.test']]) {
    const c = makeSelfSignedCert(cn);
    writeFileSync(join(dir, `${file}.crt`), c.certPem);
    writeFileSync(join(dir, `${file}.crt.good`), c.certPem);
    writeFileSync(join(dir, `${file}.key`), c.keyPem, { mode: 0o644 });
    names.set(new X509Certificate(c.certPem).fingerprint256, file);
  }
  const r = spawnSync(openssl, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'rsa.key'), '-out', join(dir, 'rsa.crt'), '-subj', '/CN=localhost', '-days', '2'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  chmodSync(join(dir, 'rsa.key'), 0o644);
  names.set(new X509Certificate(readFileSync(join(dir, 'rsa.crt'))).fingerprint256, 'rsa');
  return { dir, names };
}

function tlsConf(dir: string): string {
  return `ssl = yes
ssl_cert = <${dir}/default.crt
ssl_key = <${dir}/default.key
ssl_alt_cert = <${dir}/rsa.crt
ssl_alt_key = <${dir}/rsa.key
ssl_cipher_list = ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384
ssl_curve_list = prime256v1
ssl_prefer_server_ciphers = yes
local_name mail.a.test {
  ssl_cert = <${dir}/a.crt
  ssl_key = <${dir}/a.key
}
local_name "*.b.test other.c.test" {
  ssl_cert = <${dir}/b.crt
  ssl_key = <${dir}/b.key
}
`;
}

const TLS12 = { maxVersion: 'TLSv1.2' } as const;
const PROBES: Array<[string, ConnectionOptions]> = [
  ['no SNI', {}],
  ['mail.a.test', { servername: 'mail.a.test' }],
  ['MAIL.A.TEST', { servername: 'MAIL.A.TEST' }],
  ['x.b.test', { servername: 'x.b.test' }],
  ['deep.x.b.test', { servername: 'deep.x.b.test' }],
  ['other.c.test', { servername: 'other.c.test' }],
  ['unknown.test', { servername: 'unknown.test' }],
  ['RSA-only TLS 1.2 client', { ...TLS12, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384', sigalgs: 'RSA-PSS+SHA256:RSA+SHA256' }],
  ['cipher outside ssl_cipher_list', { ...TLS12, ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' }],
  ['curve outside ssl_curve_list', { ecdhCurve: 'secp384r1' }],
];

async function probeAll(port: number, names: Map<string, string>): Promise<string[]> {
  const out: string[] = [];
  for (const [label, opts] of PROBES) {
    const r = await probe(port, opts);
    out.push(`${label}: ${names.get(r) ?? r}`);
  }
  return out;
}

test('local_name SNI certificates, ssl_alt_cert, cipher and curve lists: the certificate Dovecot serves for each client', async (t) => {
  const openssl = requireTool(t, 'openssl');
  if (!openssl) return;
  const { dir, names } = makeCerts(t, openssl);

  const dport = await freePort();
  const dv = setupDovecot(t, { start: true, extraConf: `${tlsConf(dir)}service imap-login {\n  inet_listener imaps_sni {\n    port = ${dport}\n    ssl = yes\n  }\n}\n` });
  if (!dv) return;
  t.after(() => dv.stop());
  const want = await probeAll(dport, names);
  // `*` is one label (dns_match_wildcard): deep.x.b.test falls back to the default
  assert.deepEqual(want, ['no SNI: default', 'mail.a.test: a', 'MAIL.A.TEST: a', 'x.b.test: b', 'deep.x.b.test: default', 'other.c.test: b', 'unknown.test: default',
    'RSA-only TLS 1.2 client: rsa', 'cipher outside ssl_cipher_list: handshake failed', 'curve outside ssl_curve_list: handshake failed'], 'the oracle does what this test assumes');

  const modes = process.getuid?.() === 0 ? ['pools', 'root master'] : ['pools'];
  for (const mode of modes) {
    const srv = await startSealmail(t, {
      rewriteConf: (text) => {
        // the test's own certificate lines give way to the tree under test
        const c = text.replace(/^ssl(_cert|_key)? = .*\n/gm, '') + tlsConf(dir);
        return mode === 'root master' ? c.replace(/^mail_[ug]id = .*\n/gm, '') : c;
      },
    });
    assert.deepEqual(await probeAll(srv.imapsPort, names), want, `${mode}: IMAPS`);
    // STARTTLS picks by SNI the same way
    const fp = await starttlsProbe(srv.imapPort, 'x.b.test');
    assert.equal(names.get(fp), 'b', `${mode}: STARTTLS with SNI x.b.test`);

    // a reload whose local_name certificate does not load: the old ones stay, the file is named
    writeFileSync(join(dir, 'a.crt'), '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    process.kill(srv.pid, 'SIGHUP');
    for (const end = Date.now() + 30_000; !/Config reload failed: .*a\.crt/.test(srv.output());) {
      if (Date.now() > end) throw new Error(`${mode}: no reload error naming a.crt:\n${srv.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(names.get(await probe(srv.imapsPort, { servername: 'mail.a.test' })), 'a', `${mode}: the old certificate is still served`);
    writeFileSync(join(dir, 'a.crt'), readFileSync(join(dir, 'a.crt.good')));
    await srv.stop();
  }
});
