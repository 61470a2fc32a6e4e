/**
 * quota_warning side by side with the real Dovecot 2.3: ISPmail's rules
 * (`storage=95%% quota-warning 95 %u`, then 80%) plus a `-` rule, the
 * `quota-warning` service running a script through Dovecot's `script`
 * binary, and the same saves on both servers: LMTP deliveries and IMAP
 * APPENDs up through 80% and 95%, an EXPUNGE down through the `-` rule,
 * a COPY that crosses both upward limits in one transaction, an expunge
 * that lands exactly on a limit. The script records its arguments, uid, gid,
 * working directory and environment; after every step both servers must
 * have run the same invocations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mailIds, setupDovecot } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { tempDir } from '../helpers/tmp.js';
import { imapScript, lmtpSend, message } from './wire.js';

const serviceUser = () => (process.getuid?.() === 0 ? 'nobody' : process.env.USER ?? String(process.getuid?.()));

function quotaConf(script: string): string {
  return `disable_plaintext_auth = no
mail_plugins = $mail_plugins quota
plugin {
  quota = maildir:User quota
  quota_rule = *:bytes=20000
  quota_warning = storage=95%% quota-warning 95 %u
  quota_warning2 = storage=80%% quota-warning 80 %u
  quota_warning3 = -storage=50%% quota-warning below %u %d %n
}
service quota-warning {
  executable = script ${script}
  user = ${serviceUser()}
  unix_listener quota-warning {
    user = ${serviceUser()}
    mode = 0660
  }
}
`;
}

/** A script that appends one line per run: its arguments and what it runs as. */
function recorder(dir: string, name: string): { script: string; log: string } {
  const script = join(dir, `${name}.sh`);
  const log = join(dir, `${name}.log`);
  writeFileSync(script, `#!/bin/sh
echo "args=$* uid=$(id -u) gid=$(id -g) cwd=$(pwd) env=$(env | sort | tr '\\n' ' ')" >> ${log}
`);
  chmodSync(script, 0o755);
  return { script, log };
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

/** Wait until both logs have stopped growing for a while (the scripts run after the save has been answered). */
async function settled(a: string, b: string): Promise<void> {
  const end = Date.now() + 20_000;
  let last = '';
  let since = Date.now();
  while (Date.now() < end) {
    const now = `${lines(a).length}/${lines(b).length}`;
    if (now !== last) { last = now; since = Date.now(); }
    else if (lines(a).length === lines(b).length && Date.now() - since > 1500) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('quota_warning: the same scripts run, with the same arguments and identity, as Dovecot runs them', async (t) => {
  const rec = tempDir(t, 'qwarn-rec');
  chmodSync(rec, 0o777);
  const dvRec = recorder(rec, 'dovecot');
  const smRec = recorder(rec, 'sealmail');
  const lmtpD = await freePort();
  const imapD = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    extraConf: `${quotaConf(dvRec.script)}service imap-login {\n  inet_listener imap {\n    port = ${imapD}\n  }\n}\nservice lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${lmtpD}\n  }\n}\n`,
  });
  if (!dv) return;
  const lmtpS = await freePort();
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap lmtp\n${quotaConf(smRec.script)}service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${lmtpS}\n  }\n}\n`,
  });
  const user = 'ann@example.org';
  const lit = (size: number, subject: string) => { const m = message(size, subject).replace(/\n/g, '\r\n'); return `{${Buffer.byteLength(m)}+}\r\n${m}`; };
  type Step = [string, (lmtp: number, imap: number) => Promise<unknown>];
  const steps: Step[] = [
    ['LMTP 5000 bytes', (l) => lmtpSend(l, [user], message(5000, 'one'))],
    ['LMTP 5000 bytes', (l) => lmtpSend(l, [user], message(5000, 'two'))],
    ['APPEND 4000 bytes (about 72%)', (_l, i) => imapScript(i, user, [`a1 APPEND INBOX ${lit(4000, 'three')}`])],
    ['APPEND 2500 bytes: past 80%', (_l, i) => imapScript(i, user, [`a1 APPEND INBOX ${lit(2500, 'four')}`])],
    ['LMTP 2500 bytes: past 95%', (l) => lmtpSend(l, [user], message(2500, 'five'))],
    ['EXPUNGE everything: below 50%', (_l, i) => imapScript(i, user, ['a1 SELECT INBOX', 'a2 STORE 1:* +FLAGS.SILENT (\\Deleted)', 'a3 EXPUNGE'])],
    ['APPEND 2 x 5000 bytes (50%, upward: no rule)', (_l, i) => imapScript(i, user, [`a1 APPEND INBOX ${lit(5000, 'six')}`, `a2 APPEND INBOX ${lit(5000, 'seven')}`])],
    ['COPY 10000 bytes: past 80% and 95% in one transaction', (_l, i) => imapScript(i, user, ['a1 CREATE Keep', 'a2 SELECT INBOX', 'a3 COPY 1:2 Keep'])],
    ['EXPUNGE 10000 bytes: exactly at 50%, not below', (_l, i) => imapScript(i, user, ['a1 SELECT INBOX', 'a2 STORE 1:* +FLAGS.SILENT (\\Deleted)', 'a3 EXPUNGE'])],
    ['EXPUNGE 5000 bytes of Keep: below 50%', (_l, i) => imapScript(i, user, ['a1 SELECT Keep', 'a2 STORE 1 +FLAGS.SILENT (\\Deleted)', 'a3 EXPUNGE'])],
  ];
  const transcript: string[] = [];
  for (const [what, run] of steps) {
    const norm = (r: unknown) => (r as string[]).map((l) => l.replace(/> \S+ Saved$/, '> ID Saved'));
    const d = norm(await run(lmtpD, imapD));
    const s = norm(await run(lmtpS, srv.imapPort));
    assert.deepEqual(s, d, `${what}: same replies`);
    await settled(dvRec.log, smRec.log);
    // the script runs in the server's base_dir (the master's working directory): each server's own
    const theirs: string[] = lines(dvRec.log).map((l: string) => l.replaceAll(join(dv.dir, 'base'), 'BASE_DIR'));
    const ours: string[] = lines(smRec.log).map((l: string) => l.replaceAll(join(srv.dir, 'base'), 'BASE_DIR'));
    assert.deepEqual(ours, theirs, `after ${what}\nSealmail output:\n${srv.output()}`);
    transcript.push(`${what}: ${theirs.length}`);
  }
  const { uid, gid } = mailIds();
  // an empty environment (the shell adds PWD), the service's user and its primary group
  const ids = `uid=${uid} gid=${gid} cwd=BASE_DIR env=PWD=BASE_DIR `;
  const got = lines(dvRec.log).map((l) => l.replaceAll(join(dv.dir, 'base'), 'BASE_DIR'));
  // what Dovecot did, so that a change in it is noticed: one run per crossing, the first matching rule only
  assert.deepEqual(got, [
    `args=80 ${user} ${ids}`,
    `args=95 ${user} ${ids}`,
    `args=below ${user} example.org ann ${ids}`,
    `args=95 ${user} ${ids}`,
    `args=below ${user} example.org ann ${ids}`,
  ], transcript.join('\n'));
});

test('quota_warning: a script that fails, or is missing, is logged and the delivery still succeeds', async (t) => {
  const rec = tempDir(t, 'qwarn-fail');
  chmodSync(rec, 0o777);
  const failing = join(rec, 'fail.sh');
  writeFileSync(failing, '#!/bin/sh\necho "cannot send the warning for $2" >&2\nexit 3\n');
  chmodSync(failing, 0o755);
  const lmtp = await freePort();
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap lmtp\n${quotaConf(failing)}plugin {\n  quota_warning4 = messages=2 quota-missing x\n}\nservice quota-missing {\n  executable = script ${rec}/nonexistent\n  unix_listener quota-missing {\n  }\n}\nservice lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${lmtp}\n  }\n}\n`,
  });
  const user = 'bob@example.org';
  // 17000 of 20000 bytes: past 80% (the failing script)
  const r1 = await lmtpSend(lmtp, [user], message(17000, 'big'));
  assert.match(r1[r1.length - 2], /^250 2\.0\.0 <bob@example\.org> \S+ Saved$/);
  const end = Date.now() + 15_000;
  while (!/returned error 3/.test(srv.output()) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.match(srv.output(), /service\(quota-warning\): Error: cannot send the warning for bob@example\.org/);
  assert.match(srv.output(), /service\(quota-warning\): Error: child \d+ returned error 3/);
  // the second message: the `messages=2` rule, whose script does not exist
  const r2 = await lmtpSend(lmtp, [user], message(100, 'small'));
  assert.match(r2[r2.length - 2], /^250 2\.0\.0 <bob@example\.org> \S+ Saved$/);
  while (!/nonexistent/.test(srv.output()) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  if (process.env.QDEBUG) console.log(srv.output());
  assert.match(srv.output(), /service\(quota-missing\): Error: execvp\(\S+\/nonexistent\) failed/);
});
