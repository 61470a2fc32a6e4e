/**
 * One place settles a user's mail_plugins (src/mailuser/open-mail-user.ts):
 * a per-user `mail_plugins` from the userdb that leaves `quota` out is
 * honoured identically by IMAP APPEND, LMTP delivery and `sealadm save`
 * against a real Sealmail server and the real CLI, while a user without the
 * field gets the protocol's quota; and `sealadm save` over quota is refused
 * as the real `doveadm save` refuses it (same error text, same exit code,
 * nothing stored).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot, mailIds } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { sealadmJs } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { imapScript, lmtpSend, message } from '../quota/wire.js';

const QUOTA = `mail_plugins = $mail_plugins quota
plugin {
  quota = maildir:User quota
  quota_rule = *:bytes=3000
}
`;
const ANN = 'ann@example.org'; // no mail_plugins in the userdb: the protocol's setting (quota)
const BOB = 'bob@example.org'; // userdb_mail_plugins without quota: no quota anywhere
const CY = 'cy@example.org'; // like ann, for quota_max_mail_size

function usersFile(dir: string, home: (u: string) => string): string {
  const { uid, gid } = mailIds();
  const path = join(dir, 'users');
  writeFileSync(path, [
    `${ANN}::${uid}:${gid}::${home(ANN)}::`,
    `${BOB}::${uid}:${gid}::${home(BOB)}::userdb_mail_plugins=notify`,
    `${CY}::${uid}:${gid}::${home(CY)}::`,
  ].join('\n') + '\n');
  return path;
}

const stored = (maildir: string) => ['new', 'cur'].reduce((n, sub) => n + (existsSync(join(maildir, sub)) ? readdirSync(join(maildir, sub)).length : 0), 0);

test('a userdb mail_plugins without quota is honoured alike by IMAP APPEND, LMTP and sealadm save', async (t) => {
  const lmtp = await freePort();
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap lmtp\ndisable_plaintext_auth = no\n${QUOTA}protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\nservice lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${lmtp}\n  }\n}\n`,
    rewriteConf: (text, dir) => text.replace(/userdb \{[^}]*\}/, `userdb {\n  driver = passwd-file\n  args = ${usersFile(dir, (u) => join(dir, 'home', u))}\n}`),
  });
  const sealadm = (user: string, size: number) => spawnSync(process.execPath, [sealadmJs, '-c', srv.conf, 'save', '-u', user], { input: message(size, 'by sealadm'), encoding: 'utf8', timeout: 60_000 });
  const outcome: Record<string, { lmtp: string; imap: string; save: number | null }> = {};
  for (const user of [ANN, BOB]) {
    // 2000 bytes fit the 3000-byte limit; the next 2000 do not
    assert.match((await lmtpSend(lmtp, [user], message(2000, 'first'))).at(-2)!, /^250 /);
    const lmtpReply = (await lmtpSend(lmtp, [user], message(2000, 'second'))).at(-2)!;
    const literal = message(2000, 'appended').replace(/\n/g, '\r\n');
    const imap = await imapScript(srv.imapPort, user, [`a1 APPEND INBOX {${Buffer.byteLength(literal)}}\r\n${literal}`, 'a2 LOGOUT']);
    const save = sealadm(user, 2000);
    outcome[user] = { lmtp: lmtpReply, imap: imap.find((l) => l.startsWith('a1 '))!, save: save.status };
    if (user === ANN) assert.match(save.stderr, /Error: Saving failed: Quota exceeded \(mailbox for user is full\)/);
  }
  assert.match(outcome[ANN].lmtp, /^552 5\.2\.2 <ann@example\.org> Quota exceeded \(mailbox for user is full\)$/);
  assert.match(outcome[ANN].imap, /^a1 NO \[OVERQUOTA\] Quota exceeded \(mailbox for user is full\)\.?$/);
  assert.equal(outcome[ANN].save, 73);
  assert.match(outcome[BOB].lmtp, /^250 2\.0\.0 <bob@example\.org> \S+ Saved$/);
  assert.match(outcome[BOB].imap, /^a1 OK /);
  assert.equal(outcome[BOB].save, 0);
  assert.equal(stored(join(srv.home(ANN), 'Maildir')), 1, 'only the first message is stored for ann');
  assert.equal(stored(join(srv.home(BOB), 'Maildir')), 4, 'every message is stored for bob');
});

test('sealadm save over quota is refused as doveadm save refuses it', async (t) => {
  const { uid, gid } = mailIds();
  const dir = tempDir(t, 'mailuser-save');
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'home'));
  if (process.getuid?.() === 0) chownSync(join(dir, 'home'), uid, gid);
  const home = (u: string) => join(dir, 'home', u);
  const dv = setupDovecot(t, { start: true, userdb: `userdb {\n  driver = passwd-file\n  args = ${usersFile(dir, home)}\n}`, mailLocation: 'maildir:~/Maildir', extraConf: QUOTA });
  if (!dv) return;
  const sealadm = (user: string, size: number, opts: string[] = []) => spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...opts, 'save', '-u', user], { input: message(size, 'by sealadm'), encoding: 'utf8', timeout: 60_000 });
  const errorText = (stderr: string) => stderr.split('\n').find((l) => l.includes('Error: '))?.replace(/^.*?Error: /, 'Error: ');
  for (const user of [ANN, BOB]) {
    const first = dv.doveadm(['save', '-u', user], message(2000, 'first'));
    assert.equal(first.status, 0, first.stderr);
    const theirs = dv.doveadm(['save', '-u', user], message(2000, 'by doveadm'));
    const ours = sealadm(user, 2000);
    assert.equal(ours.status, theirs.status, `${user}: exit status (doveadm: ${theirs.stderr})`);
    assert.equal(errorText(ours.stderr), errorText(theirs.stderr), `${user}: error text`);
  }
  // quota_max_mail_size: refused whatever the usage, with quota.c's text
  const max = ['-o', 'plugin/quota_max_mail_size=1000'];
  const theirs = dv.doveadm([...max, 'save', '-u', CY], message(1500, 'too big'));
  const ours = sealadm(CY, 1500, max);
  assert.equal(ours.status, theirs.status, `max size: exit status (doveadm: ${theirs.stderr})`);
  assert.equal(errorText(ours.stderr), errorText(theirs.stderr), 'max size: error text');
  assert.equal(stored(join(home(CY), 'Maildir')), 0);
  assert.equal(stored(join(home(ANN), 'Maildir')), 1, 'over quota: neither stored anything for ann');
  assert.equal(stored(join(home(BOB), 'Maildir')), 3, 'bob has no quota: both saved');
});
