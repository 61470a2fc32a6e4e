/**
 * `sealadm penalty` against the real `doveadm penalty`: the same failed
 * IMAP logins from 127.0.0.1 on both (each with another password: anvil
 * counts a repeated user+password only once) give the same table (IP,
 * penalty, last_penalty, last_update) after masking the times; an ip/bits
 * that holds the address shows the row, one that does not only the header;
 * both in the service pool mode (penalties relayed through the master) and
 * the root master's (the auth process's). An invalid netmask and an extra
 * argument are exit 64, an unknown flag too; no server: doveadm's
 * net_connect_unix fatal, exit 75.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { freePort } from '../helpers/databases.js';

const root = process.getuid?.() === 0;
const COMMON = 'auth_failure_delay = 0\ndisable_plaintext_auth = no\n';
const FAILURES: [string, string][] = [['alice@example.org', 'wrong1'], ['alice@example.org', 'wrong2'], ['bob@example.org', 'wrong3']];
const NETS = [[], ['127.0.0.0/8'], ['127.0.0.1'], ['10.0.0.0/8'], ['::1/128']];

function sealadm(conf: string, ...args: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

/** The failed logins, each on its own connection (the penalty delays each next one). */
async function failLogins(port: number): Promise<void> {
  for (const [u, p] of FAILURES) {
    const c = await ImapLine.open(port);
    assert.match(await c.cmd('a', `LOGIN ${u} ${p}`), /^a NO/m);
    c.close();
  }
}

const mask = (out: string) => out.replace(/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}/g, 'DATE TIME').replace(/(?<= )[0-9]{2}:[0-9]{2}:[0-9]{2}/g, 'TIME');

test('penalty: doveadm\'s table for the same failed logins, in both server modes', { timeout: 300_000 }, async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: `${COMMON}service imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
  if (!dv) return;
  t.after(() => dv.stop());
  await failLogins(port);
  const want = NETS.map((n) => { const r = dv.doveadm(['penalty', ...n]); return { stdout: mask(r.stdout), status: r.status }; });
  assert.match(want[0].stdout, /^127\.0\.0\.1 +3 +DATE TIME +TIME *$/m, 'what Dovecot does');

  const modes = [
    { name: 'service pools', rewrite: (text: string) => text },
    ...(root ? [{ name: 'root master', rewrite: (text: string) => text.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, '') }] : []),
  ];
  for (const mode of modes) {
    const srv = await startSealmail(t, { extraConf: COMMON, rewriteConf: mode.rewrite });
    await failLogins(srv.imapPort);
    const got = NETS.map((n) => { const r = sealadm(srv.conf, 'penalty', ...n); return { stdout: mask(r.stdout), status: r.status }; });
    assert.deepEqual(got, want, `${mode.name}: doveadm's tables`);
    await srv.stop();
  }

  // usage and no server, as doveadm
  for (const args of [['penalty', 'foo'], ['penalty', '127.0.0.1/33'], ['penalty', '-x'], ['penalty', '127.0.0.1', 'extra']]) {
    const d = dv.doveadm(args);
    const s = sealadm(dv.conf, ...args);
    assert.equal(s.status, d.status, args.join(' '));
    if (args[1] !== '-x') assert.equal(s.stderr, d.stderr, args.join(' '));
  }
  const nowhere = ['-o', `base_dir=${join(dv.dir, 'nothing')}`, 'penalty'];
  const gone = dv.doveadm(nowhere);
  const ours = sealadm(dv.conf, ...nowhere);
  assert.deepEqual({ ...ours, stderr: ours.stderr.replace('sealmail-admin', 'anvil') }, gone);
});
