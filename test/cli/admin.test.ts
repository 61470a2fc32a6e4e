/**
 * sealadm reload / stop / who / kick against a running server, in both
 * server modes, with doveadm's output, flags and exit codes: who's table
 * (one row per user and protocol: count, (pids), (ips)) and -1 (one row per
 * connection), masks without case and by IP; kick ends exactly the matching
 * user's sessions with the shutdown BYE and log line, "no users kicked" and
 * exit 68 when none matches, exit 64 without a mask; reload is a SIGHUP
 * to the pid in master.pid; stop ends the server and its pid file, and a
 * second stop says Dovecot is not running (exit 75). The admin socket is
 * root's only (0600).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { sealadmJs } from '../helpers/paths.js';

const root = process.getuid?.() === 0;
const MODES = [
  { name: 'service pools', rewrite: (text: string) => text, skip: false as const },
  { name: 'root master', rewrite: (text: string) => text.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, ''), skip: root ? false as const : 'needs root (the mode is root without mail_uid)' },
];

function sealadm(conf: string, ...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function waitFor(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function login(port: number, user: string): Promise<ImapLine> {
  const c = await ImapLine.open(port);
  assert.match(await c.cmd('a', `LOGIN ${user} pass`), /^a OK/m);
  return c;
}

for (const mode of MODES) {
  test(`${mode.name}: sealadm who, kick, reload and stop as doveadm's`, { skip: mode.skip, timeout: 180_000 }, async (t) => {
    const srv = await startSealmail(t, { rewriteConf: mode.rewrite });
    const sock = join(srv.dir, 'base', 'sealmail-admin');
    assert.equal(statSync(sock).mode & 0o777, 0o600, 'the admin socket is root-only');
    const clients = [await login(srv.imapPort, 'alice'), await login(srv.imapPort, 'alice'), await login(srv.imapPort, 'bob')];
    t.after(() => { for (const c of clients) c.close(); });
    const [a1, a2, bob] = clients;
    // a connection that has not logged in is no session: who does not list it (anvil counts logins)
    const anon = await ImapLine.open(srv.imapPort);
    t.after(() => anon.close());

    // the sessions reach the master's table a moment after the login reply
    await waitFor('three sessions', () => sealadm(srv.conf, '-f', 'tab', 'who', '-1').out.trim().split('\n').length === 4);
    const who = sealadm(srv.conf, 'who');
    assert.equal(who.code, 0, who.err);
    // doveadm's table as who prints it (flushed after each user: the widths are the titles' and the first row's,
    // the last column takes half the room left on 80 columns); the first row is alice's, the oldest session
    const pids = (u: string) => [...new Set(sealadm(srv.conf, '-f', 'tab', 'who', '-1', u).out.split('\n').slice(1).filter(Boolean).map((l) => l.split('\t')[2]))].join(' ');
    const rows = [['username', '#', 'proto', '(pids)', '(ips)'], ['alice', '2', 'imap', `(${pids('alice')})`, '(127.0.0.1)'], ['bob', '1', 'imap', `(${pids('bob')})`, '(127.0.0.1)']];
    const widths = rows[0].map((_, i) => Math.max(rows[0][i].length, rows[1][i].length));
    widths[4] += Math.floor((80 - (widths.reduce((a, b) => a + b) + 4)) / 2);
    const cell = (v: string, i: number) => (i === 1 ? v.padStart(widths[i]) : v.padEnd(widths[i]));
    assert.equal(who.out, rows.map((r) => r.map(cell).join(' ') + '\n').join(''));

    const one = sealadm(srv.conf, '-f', 'tab', 'who', '-1', 'AL*');
    assert.equal(one.code, 0);
    const oneRows = one.out.split('\n').filter(Boolean);
    assert.equal(oneRows[0], 'username\tproto\tpid\tip');
    assert.equal(oneRows.length, 3, one.out);
    for (const r of oneRows.slice(1)) assert.match(r, /^alice\timap\t\d+\t127\.0\.0\.1$/);
    // -1 as a table: the username column (EXPAND) takes the room
    const table1 = sealadm(srv.conf, 'who', '-1', 'bob').out.split('\n');
    assert.equal(table1[0], `${'username'.padEnd(8 + Math.floor((80 - (8 + 5 + Math.max(3, pids('bob').length) + 9 + 3)) / 2))} proto ${'pid'.padEnd(Math.max(3, pids('bob').length))} ip       `);
    assert.equal(table1.length, 3);
    assert.equal(sealadm(srv.conf, '-f', 'tab', 'who', '-1', '10.0.0.0/8').out, 'username\tproto\tpid\tip\n', 'an IP mask matching none');
    assert.equal(sealadm(srv.conf, '-f', 'tab', 'who', '-1', '127.0.0.0/8').out.split('\n').filter(Boolean).length, 4);

    // kick: exactly alice's two sessions, with the shutdown BYE
    assert.deepEqual(sealadm(srv.conf, 'kick'), { code: 64, out: '', err: 'Error: user and/or ip[/bits] must be specified.\n' });
    assert.deepEqual(sealadm(srv.conf, 'kick', 'nobody'), { code: 68, out: 'no users kicked\n', err: '' });
    const kick = sealadm(srv.conf, 'kick', 'alice');
    // byte for byte what doveadm writes to a pipe: its print stream's names before printf's buffered text
    assert.deepEqual(kick, { code: 0, out: 'alice kicked connections from the following users:\n\n', err: '' });
    for (const c of [a1, a2]) {
      assert.match(await c.until(/^\* BYE Server shutting down\.\r\n/m, 'the BYE'), /\* BYE Server shutting down\./);
      await waitFor('the kicked connection to close', () => c.sock.destroyed || c.sock.readableEnded);
    }
    assert.match(await bob.cmd('n', 'NOOP'), /^n OK/m, 'bob goes on');
    assert.match(await anon.cmd('n', 'NOOP'), /^n OK/m, 'the connection that has not logged in goes on');
    await waitFor('the kick in the log', () => /imap\(alice\)[^\n]*: Disconnected: Server shutting down\./.test(srv.output()));
    await waitFor('alice gone from who', () => sealadm(srv.conf, '-f', 'tab', 'who', '-1').out.trim().split('\n').length === 2);

    // reload: SIGHUP to the pid in master.pid
    const reload = sealadm(srv.conf, 'reload');
    assert.deepEqual(reload, { code: 0, out: '', err: '' });
    await waitFor('the reload', () => srv.output().includes('SIGHUP received - reloading configuration'));
    assert.match(await bob.cmd('m', 'NOOP'), /^m OK/m, 'a reload keeps the session');

    // stop: the server ends, master.pid with it; a second stop finds nothing running
    const pidFile = join(srv.dir, 'base', 'master.pid');
    const stop = sealadm(srv.conf, 'stop');
    assert.deepEqual(stop, { code: 0, out: '', err: '' });
    assert.equal(await srv.stop(), 0);
    assert.ok(!existsSync(pidFile) || readFileSync(pidFile, 'utf8') === '');
    const again = sealadm(srv.conf, 'stop');
    assert.equal(again.code, 75);
    assert.match(again.err, new RegExp(`Fatal: Dovecot is not running \\(read from ${pidFile.replace(/[.]/g, '\\.')}\\)\\n$`));
    const whoDown = sealadm(srv.conf, 'who');
    assert.equal(whoDown.code, 75);
    assert.match(whoDown.err, /^Fatal: net_connect_unix\(.*sealmail-admin\) failed: (No such file or directory|Connection refused)\n$/);
    // a tree that does not parse: doveadm reads it first and stops with doveconf's error (exit 89)
    writeFileSync(srv.conf, readFileSync(srv.conf, 'utf8') + '\nservice imap-login {\n');
    const broken = sealadm(srv.conf, 'reload');
    assert.equal(broken.code, 89);
    assert.match(broken.err, /^doveconf: Fatal: Error in configuration file .*dovecot\.conf: Missing '}'/);
  });
}
