/**
 * Reload without dropping sessions (Dovecot's master SIGHUP, doveadm
 * reload), in both server modes: the supervised pools (mail_uid set, or not
 * root) and the root master (root, no mail_uid). After SIGHUP a new
 * connection gets the new login_greeting and the new certificate, while 200
 * sessions in IDLE from before go on (DONE and NOOP answered); a tree that
 * no longer parses is logged as Dovecot logs it and the old settings keep
 * serving; base_dir/master.pid names the master, a second start is refused
 * with Dovecot's text, and a clean stop takes the pid out.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { mailIds } from '../helpers/dovecot.js';
import { sealmailJs } from '../helpers/paths.js';
import { makeSelfSignedCert } from '../../src/server/selfsigned.js';

const root = process.getuid?.() === 0;
const MODES = [
  { name: 'service pools', rewrite: (text: string) => text, skip: false as const },
  { name: 'root master', rewrite: (text: string) => text.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, ''), skip: root ? false as const : 'needs root (the mode is root without mail_uid)' },
];

/** Wait for `cond` with a bounded deadline. */
async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!await cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A new connection's greeting text and the certificate the IMAPS listener shows. */
async function greeting(port: number): Promise<string> {
  const c = new ImapLine(netConnect(port, '127.0.0.1'));
  try { return await c.until(/^\* (OK|PREAUTH) .*\r\n/, 'greeting'); } finally { c.close(); }
}

async function peerCert(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    // closed after the greeting: a client that resets right after the handshake keeps its pre-login
    // connection open in the server until the login deadline, and with it an old process after a reload
    const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    s.once('data', () => { resolve(s.getPeerX509Certificate()?.fingerprint256 ?? ''); s.end(); });
    s.on('error', reject);
  });
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

/** The master's child processes (from /proc: PPid). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try { if (Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1]) === pid) out.push(Number(p)); } catch { /* gone */ }
  }
  return out;
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

async function start(t: TestContext, rewrite: (text: string) => string): Promise<SealmailServer> {
  return startSealmail(t, { rewriteConf: rewrite });
}

/** Rewrite the running server's tree (as an admin edits it), then SIGHUP. */
function editTree(srv: SealmailServer, edit: (text: string) => string): void {
  writeFileSync(srv.conf, edit(readFileSync(srv.conf, 'utf8')));
}

/** A new certificate and key the master can read after giving root up (the mail uid owns the key). */
function newCertificate(srv: SealmailServer): string {
  const { certPem, keyPem } = makeSelfSignedCert('localhost');
  writeFileSync(join(srv.dir, 'cert2.pem'), certPem);
  writeFileSync(join(srv.dir, 'key2.pem'), keyPem, { mode: 0o600 });
  if (root) { const { uid, gid } = mailIds(); chownSync(join(srv.dir, 'key2.pem'), uid, gid); }
  return certPem;
}

for (const mode of MODES) {
  test(`${mode.name}: SIGHUP during 200 IDLE sessions drops none; new connections get the new greeting and certificate`, { skip: mode.skip, timeout: 300_000 }, async (t) => {
    const srv = await start(t, mode.rewrite);
    const oldCert = await peerCert(srv.imapsPort);
    const idle: ImapLine[] = [];
    t.after(() => { for (const c of idle) c.close(); });
    for (let i = 0; i < 200; i++) {
      const c = await ImapLine.open(srv.imapPort);
      idle.push(c);
      await c.cmd('a', `LOGIN user${i % 20} pass`);
      c.sock.write('b IDLE\r\n');
      await c.until(/^\+ idling\r\n/m, 'IDLE continuation');
    }
    const before = childrenOf(srv.pid);
    const certPem = newCertificate(srv);
    editTree(srv, (text) => text.replace('login_greeting = Sealmail test ready.', 'login_greeting = Reloaded and ready.')
      .replace(/^ssl_cert = .*$/m, `ssl_cert = <${srv.dir}/cert2.pem`).replace(/^ssl_key = .*$/m, `ssl_key = <${srv.dir}/key2.pem`));
    process.kill(srv.pid, 'SIGHUP');
    await waitFor('the SIGHUP log line', () => srv.output().includes('SIGHUP received - reloading configuration'));
    await waitFor('the new greeting', async () => /Reloaded and ready\./.test(await greeting(srv.imapPort)));
    assert.equal(await peerCert(srv.imapsPort), fingerprint(certPem), 'a new IMAPS connection shows the new certificate');
    assert.notEqual(oldCert, fingerprint(certPem));
    // every session from before the reload is still there and served
    for (const [i, c] of idle.entries()) {
      c.sock.write('DONE\r\n');
      await c.until(/^b OK [^\r\n]*\r\n/m, `IDLE end of session ${i}`);
      assert.match(await c.cmd('c', 'NOOP'), /^c OK/m, `session ${i} after the reload`);
    }
    assert.ok(before.some(alive), 'the old processes still serve their sessions');
    // once their sessions end, the processes of the old tree exit (Dovecot's old processes after a reload)
    for (const c of idle) { await c.cmd('z', 'LOGOUT').catch(() => ''); c.close(); }
    await waitFor('the old processes to exit', () => !before.some(alive)).catch((e: Error) => {
      const left = before.filter(alive).map((p) => { try { return `${p}: ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`; } catch { return String(p); } });
      throw new Error(`${e.message}: ${left.join('; ')}`);
    });
    assert.match(await greeting(srv.imapPort), /Reloaded and ready\./);
    assert.doesNotMatch(srv.output(), /Error reading configuration|Config reload failed/);
    assert.equal(await srv.stop(), 0);
  });

  test(`${mode.name}: a tree that fails to parse on SIGHUP is logged and the old settings keep serving`, { skip: mode.skip, timeout: 120_000 }, async (t) => {
    const srv = await start(t, mode.rewrite);
    const c = await ImapLine.open(srv.imapPort);
    t.after(() => c.close());
    await c.cmd('a', 'LOGIN alice pass');
    editTree(srv, (text) => text.replace('login_greeting = Sealmail test ready.', 'login_greeting = Never seen.\nservice imap-login {\n'));
    process.kill(srv.pid, 'SIGHUP');
    await waitFor('the reload error', () => /Error: Error reading configuration: Error in configuration file .*dovecot\.conf/.test(srv.output()));
    assert.match(await c.cmd('b', 'NOOP'), /^b OK/m, 'the session from before goes on');
    assert.match(await greeting(srv.imapPort), /Sealmail test ready\./, 'new connections keep the old settings');
    // repaired, a second SIGHUP takes effect
    editTree(srv, (text) => text.replace('login_greeting = Never seen.\nservice imap-login {\n', 'login_greeting = Repaired.'));
    process.kill(srv.pid, 'SIGHUP');
    await waitFor('the repaired greeting', async () => /Repaired\./.test(await greeting(srv.imapPort)));
    assert.match(await c.cmd('d', 'NOOP'), /^d OK/m);
    assert.equal(await srv.stop(), 0);
  });

  test(`${mode.name}: base_dir/master.pid names the master, a second start is refused, a clean stop removes it`, { skip: mode.skip, timeout: 120_000 }, async (t) => {
    const srv = await start(t, mode.rewrite);
    const pidFile = join(srv.dir, 'base', 'master.pid');
    assert.equal(readFileSync(pidFile, 'utf8'), `${srv.pid}\n`);
    const second = spawnSync(process.execPath, [sealmailJs, '-c', srv.conf], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(second.status, 89);
    assert.match(second.stdout + second.stderr, new RegExp(`Fatal: Dovecot is already running with PID ${srv.pid} \\(read from ${pidFile.replace(/[.]/g, '\\.')}\\)`));
    assert.equal(await greeting(srv.imapPort) !== '', true, 'the running one is untouched');
    assert.equal(await srv.stop(), 0);
    // the pool master runs as the mail uid by then: it may only empty the file in a root-owned base_dir (Dovecot: "Empty PID file", not running)
    assert.ok(!existsSync(pidFile) || readFileSync(pidFile, 'utf8') === '', 'no pid left in master.pid');
  });
}
