/**
 * Sealmail's quota-status policy service against Dovecot's own
 * (`quota-status -p postfix`) on the same users and Maildirs: the same
 * action for every request — Dovecot's defaults (OK, REJECT Unknown user,
 * 554 5.2.2 + quota_exceeded_message), the grace boundary byte for byte,
 * no size (the connection's last size counts, as in Dovecot), a user over
 * quota by message count, the count backend, an
 * unlimited user, a `noenforcing` root, detail and case in the recipient.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot, mailIds } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { tempDir } from '../helpers/tmp.js';
import { message } from './wire.js';

async function ask(sock: string, requests: { recipient: string; size?: number }[]): Promise<string[]> {
  const c = connect(sock);
  await new Promise<void>((res, rej) => { c.once('connect', res); c.once('error', rej); });
  let buf = '';
  c.on('data', (d) => { buf += d; });
  const out: string[] = [];
  for (const r of requests) {
    c.write(`request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nsender=a@example.net\nrecipient=${r.recipient}\n${r.size === undefined ? '' : `size=${r.size}\n`}\n`);
    for (let i = 0; i < 500 && !buf.includes('\n\n'); i++) await new Promise((res) => setTimeout(res, 10));
    const i = buf.indexOf('\n\n');
    assert.ok(i >= 0, `no answer for ${r.recipient}`);
    out.push(buf.slice(0, i));
    buf = buf.slice(i + 2);
  }
  c.destroy();
  return out;
}

test('quota-status answers as Dovecot\'s quota-status -p postfix', async (t) => {
  const { uid, gid } = mailIds();
  const dir = tempDir(t, 'quota-status-users');
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'home'));
  if (process.getuid?.() === 0) chownSync(join(dir, 'home'), uid, gid);
  const home = (u: string) => join(dir, 'home', u);
  const users = join(dir, 'users');
  writeFileSync(users, [
    `ann@example.org::${uid}:${gid}::${home('ann@example.org')}::userdb_quota_rule=*:storage=3K`,
    `bob@example.org::${uid}:${gid}::${home('bob@example.org')}::userdb_quota_rule=*:bytes=0`,
    `cy@example.org::${uid}:${gid}::${home('cy@example.org')}::userdb_quota_rule=*:messages=2`,
    `dee@example.org::${uid}:${gid}::${home('dee@example.org')}::userdb_quota=count:Count userdb_quota_vsizes=yes userdb_quota_rule=*:storage=1K`,
    `eli@example.org::${uid}:${gid}::${home('eli@example.org')}::userdb_quota=maildir:Soft:noenforcing userdb_quota_rule=*:bytes=10`,
  ].join('\n') + '\n');
  const common = `recipient_delimiter = +
mail_plugins = $mail_plugins quota
plugin {
  quota = maildir:User quota
  quota_exceeded_message = Mailbox of %u is full
}
`;
  const dv = setupDovecot(t, {
    start: true,
    userdb: `userdb {\n  driver = passwd-file\n  args = ${users}\n}`,
    mailLocation: 'maildir:~/Maildir',
    extraConf: `${common}service quota-status {\n  executable = quota-status -p postfix\n  unix_listener quota-status {\n    mode = 0666\n  }\n}\n`,
  });
  if (!dv) return;
  for (const [u, n, size] of [['ann@example.org', 2, 1000], ['bob@example.org', 1, 300], ['cy@example.org', 2, 200], ['dee@example.org', 1, 700], ['eli@example.org', 1, 300]] as const) {
    for (let i = 0; i < n; i++) { const res: { status: number | null; stderr: string } = dv.doveadm(['save', '-u', u], message(size, `m${i}`)); assert.equal(res.status, 0, res.stderr); }
  }
  let sock = '';
  await startSealmail(t, {
    extraConf: `${common}service quota-status {\n  unix_listener SOCK {\n    mode = 0666\n  }\n}\n`,
    beforeStart: (d) => { sock = join(d, 'quota-status'); },
    rewriteConf: (text) => text.replace('SOCK', sock).replace(/userdb \{\n  driver = static\n  args = [^\n]*\n\}/, `userdb {\n  driver = passwd-file\n  args = ${users}\n}`),
  });
  // ann: 3 KiB limit, 10% grace: the largest size that still fits, and one byte more
  const used = readFileSync(join(home('ann@example.org'), 'Maildir', 'maildirsize'), 'utf8').trim().split('\n').slice(1).reduce((a, l) => a + Number(l.split(' ')[0]), 0);
  const edge = 3072 + 307 - used;
  // Dovecot keeps the last size= of the connection for a request without one
  const requests = [
    { recipient: 'ann@example.org' },
    { recipient: 'ann@example.org', size: 100 },
    { recipient: 'ann@example.org', size: edge },
    { recipient: 'ann@example.org', size: edge + 1 },
    { recipient: 'Ann+lists@Example.org', size: edge + 1 },
    { recipient: 'ann@example.org' },
    { recipient: 'ann@example.org', size: 0 },
    { recipient: 'bob@example.org', size: 50_000_000 },
    { recipient: 'cy@example.org', size: 1 },
    { recipient: 'cy@example.org' },
    { recipient: 'dee@example.org', size: 100 },
    { recipient: 'dee@example.org', size: 2000 },
    { recipient: 'eli@example.org', size: 1000 },
    { recipient: 'nobody@example.org', size: 1 },
  ];
  const theirs = await ask(join(dv.dir, 'base', 'quota-status'), requests);
  const ours = await ask(sock, requests);
  assert.deepEqual(ours, theirs);
  assert.ok(theirs.includes('action=554 5.2.2 Mailbox of ann@example.org is full'), theirs.join('\n'));
});
