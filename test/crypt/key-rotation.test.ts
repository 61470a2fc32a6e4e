/**
 * Opt-in folder key rotation (plugin { sealmail_crypt_key_rotation }): the
 * first save into a folder after its key's period (its creation time made
 * 31 days old here) makes a new active key,
 * the old one stays, as `doveadm mailbox cryptokey generate -f` leaves
 * them; within the period nothing changes. The real Dovecot lists both keys
 * and reads every message, old and new; `sealadm mailbox cryptokey list`
 * shows the same history. A key Dovecot made is aged from the first save
 * that sees it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { CRYPT_CONF } from '../helpers/mail-crypt.js';

const MSG = (n: string) => `From: s@example.org\nTo: u@example.org\nSubject: rotation ${n}\nMessage-ID: <${n}@example.org>\n\nBody of ${n}.\n`;

test('folder key rotation: a new key after the period, old keys kept, Dovecot reads everything', async (t) => {
  const dv = setupDovecot(t, {
    start: true,
    extraConf: `${CRYPT_CONF}plugin {
  sealmail_crypt_key_rotation = 30 days
}
`,
  });
  if (!dv) return;
  const PW = 'Pässwort-1';
  const U = 'rot@example.org';
  const pwOpt = ['-o', `plugin/mail_crypt_private_password=${PW}`];
  const S = (args: string[], input?: string) => spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { input, encoding: 'utf8', timeout: 60_000 });
  const ok = (r: { status: number | null; stderr: string }, what: string) => assert.equal(r.status, 0, `${what}: ${r.stderr}`);
  /** INBOX's keys as doveadm lists them (tab: folder, active, id). */
  const dovecotKeys = () => {
    const r = dv.doveadm(['-f', 'tab', 'mailbox', 'cryptokey', 'list', '-u', U, 'INBOX']);
    ok(r, 'doveadm cryptokey list');
    return r.stdout.trim().split('\n').slice(1).map((l) => l.split('\t'));
  };

  // Dovecot itself starts with the setting in plugin {} (it ignores it) and makes the user key
  ok(dv.doveadm([...pwOpt, 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']), 'doveadm generate -U');
  ok(S(['save', '-u', U], MSG('m1')), 'save 1');
  const first = dovecotKeys();
  assert.equal(first.length, 1, JSON.stringify(first));
  ok(S(['save', '-u', U], MSG('m2')), 'save 2 (within the period)');
  assert.deepEqual(dovecotKeys(), first, 'no new key within the period');

  // the key grows old: its recorded creation time (Dovecot records none) moved 31 days back
  const dict = join(dv.home(U), 'Maildir', 'dovecot-attributes');
  const lines = readFileSync(dict, 'utf8').split('\n');
  const at = lines.findIndex((l) => l.endsWith(`/sealmail/crypt/created/${first[0][2]}`));
  assert.ok(at >= 0 && at % 2 === 0, 'creation time recorded when the key was made');
  assert.ok(Math.abs(Number(lines[at + 1]) - Date.now()) < 600_000);
  lines[at + 1] = String(Date.now() - 31 * 86_400_000);
  writeFileSync(dict, lines.join('\n'));
  ok(S(['save', '-u', U], MSG('m3')), 'save 3 (after the period)');
  ok(S(['save', '-u', U], MSG('m4')), 'save 4');
  const after = dovecotKeys();
  assert.equal(after.length, 2, JSON.stringify(after));
  const [oldKey] = first;
  const newKey = after.find((k) => k[2] !== oldKey[2])!;
  assert.equal(newKey[1], 'yes', 'the new key is the active one');
  assert.equal(after.find((k) => k[2] === oldKey[2])![1], 'no', 'the old key stays, inactive');

  // the real Dovecot reads the messages under both keys
  const r = dv.doveadm([...pwOpt, '-f', 'flow', 'fetch', '-u', U, 'text', 'mailbox', 'INBOX', 'all']);
  ok(r, 'doveadm fetch');
  for (const n of ['m1', 'm2', 'm3', 'm4']) assert.match(r.stdout, new RegExp(`Body of ${n}\\.`), r.stdout);
  // and sealadm lists the same history
  const l = S(['-f', 'tab', 'mailbox', 'cryptokey', 'list', '-u', U, 'INBOX']);
  ok(l, 'sealadm cryptokey list');
  assert.deepEqual(l.stdout.trim().split('\n').slice(1).map((x) => x.split('\t')).sort(), [...after].sort());
  // a folder key Dovecot made (no creation time): its age counts from the first save that sees it
  ok(dv.doveadm(['mailbox', 'create', '-u', U, 'Dove']), 'doveadm mailbox create');
  ok(dv.doveadm([...pwOpt, 'mailbox', 'cryptokey', 'generate', '-u', U, 'Dove']), 'doveadm generate Dove');
  ok(S(['save', '-u', U, '-m', 'Dove'], MSG('d1')), 'save into Dove');
  const dove = dv.doveadm(['-f', 'tab', 'mailbox', 'cryptokey', 'list', '-u', U, 'Dove']);
  assert.equal(dove.stdout.trim().split('\n').length, 2, dove.stdout);
  assert.ok(readFileSync(dict, 'utf8').includes(`/sealmail/crypt/created/${dove.stdout.trim().split('\n')[1].split('\t')[2]}`), 'first seen: recorded');

  // Sealmail reads them too
  const f = S([...pwOpt, '-f', 'flow', 'fetch', '-u', U, 'text', 'mailbox', 'INBOX', 'all']);
  ok(f, 'sealadm fetch');
  for (const n of ['m1', 'm2', 'm3', 'm4']) assert.match(f.stdout, new RegExp(`Body of ${n}\\.`));
});
