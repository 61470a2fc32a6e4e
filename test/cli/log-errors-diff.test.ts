/**
 * `sealadm log errors` against the real `doveadm log errors`: the same
 * failing logins on both (a passdb whose stored password has an unknown
 * scheme: auth logs "Unknown scheme FOO" as an error, for each attempt, in
 * Dovecot's auth process and in Sealmail's) leave the same lines in the
 * master's ring, printed in doveadm's format (`<time> Error: <prefix>:
 * <text>`) after masking the time and session ids; -s with a time after
 * them prints nothing; -s before them prints them all. Run in both server
 * modes (service pools; the root master, whose auth lines come from its
 * auth process over IPC). An extra argument and an unknown flag are exit
 * 64 on both; no server: doveadm's net_connect_unix fatal, exit 75.
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
const PASSDB = 'passdb {\n  driver = static\n  args = password={FOO}secret\n}';
const USERS = ['alice@example.org', 'bob@example.org'];

const COMMON = 'auth_failure_delay = 0\ndisable_plaintext_auth = no\n';

/** One failed IMAP LOGIN per user, each on its own connection. */
async function failLogins(port: number): Promise<void> {
  for (const u of USERS) {
    const c = await ImapLine.open(port);
    assert.match(await c.cmd('a', `LOGIN ${u} wrong`), /^a NO/m);
    c.close();
  }
}

function sealadm(conf: string, ...args: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

/** The lines of interest (the auth errors), with what differs by nature masked. */
const mask = (out: string) => out.split('\n').filter((l) => l.includes('Unknown scheme'))
  .map((l) => l.replace(/^[A-Z][a-z]{2} [0-9 ][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} /, 'TIME ').replace(/<[A-Za-z0-9+/]+>/g, '<SESSION>').replace(/\([0-9]+\)/g, '(PID)'));

test('log errors: doveadm\'s lines for the same auth errors, in both server modes', { timeout: 300_000 }, async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, protocols: 'imap', passdb: PASSDB, extraConf: `${COMMON}service imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
  if (!dv) return;
  t.after(() => dv.stop());
  const before = Math.floor(Date.now() / 1000) - 1;
  await failLogins(port);
  const dvOut = dv.doveadm(['log', 'errors']);
  const want = mask(dvOut.stdout);
  assert.equal(want.length, USERS.length, `Dovecot's ring: ${dvOut.stdout}`);
  assert.deepEqual(mask(dv.doveadm(['log', 'errors', '-s', String(before + 3600)]).stdout), []);

  const modes = [
    { name: 'service pools', rewrite: (text: string) => text },
    ...(root ? [{ name: 'root master', rewrite: (text: string) => text.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, '') }] : []),
  ];
  for (const mode of modes) {
    const srv = await startSealmail(t, { passdb: PASSDB, extraConf: COMMON, rewriteConf: mode.rewrite });
    await failLogins(srv.imapPort);
    const got = sealadm(srv.conf, 'log', 'errors');
    assert.equal(got.status, 0, got.stderr);
    assert.deepEqual(mask(got.stdout), want, `${mode.name}: doveadm's lines`);
    assert.deepEqual(mask(sealadm(srv.conf, 'log', 'errors', '-s', String(before + 3600)).stdout), [], `${mode.name}: -s after them`);
    assert.deepEqual(mask(sealadm(srv.conf, 'log', 'errors', '-s', String(before)).stdout), want, `${mode.name}: -s before them`);
    await srv.stop();
  }

  // usage and no server, as doveadm
  for (const args of [['log', 'errors', 'extra'], ['log', 'errors', '-x']]) {
    assert.equal(sealadm(dv.conf, ...args).status, dv.doveadm(args).status, args.join(' '));
  }
  const nowhere = ['-o', `base_dir=${join(dv.dir, 'nothing')}`, 'log', 'errors'];
  const gone = dv.doveadm(nowhere);
  const ours = sealadm(dv.conf, ...nowhere);
  assert.equal(ours.status, gone.status);
  assert.equal(ours.stdout, gone.stdout);
  assert.equal(ours.stderr.replace('sealmail-admin', 'log-errors'), gone.stderr);
});
