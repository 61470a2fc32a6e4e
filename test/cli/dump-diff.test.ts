/**
 * `sealadm dump` against the real `doveadm dump` on files the real Dovecot
 * made: a mail-crypt encrypted message and every key string of a mail-crypt
 * user (private keys encrypted with the password and with the user key,
 * public keys), with the type detected and given by -t; and the errors:
 * an unknown type, a file of neither type (detected and forced), a missing
 * file, no path. Stdout, the exit code and the last stderr line must match.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { CRYPT_CONF } from '../helpers/mail-crypt.js';

const U = 'ann@example.org';

test('sealadm dump = doveadm dump on mail-crypt files and keys', (t) => {
  const dv = setupDovecot(t, { start: true, extraConf: CRYPT_CONF });
  if (!dv) return;
  t.after(() => dv.stop());
  const pw = ['-o', 'plugin/mail_crypt_private_password=pw'];
  assert.equal(dv.doveadm([...pw, 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']).status, 0);
  assert.equal(dv.doveadm(['save', '-u', U], 'Subject: x\n\nhello\n').status, 0);
  const maildir = join(dv.home(U), 'Maildir');
  const mail = join(maildir, 'new', readdirSync(join(maildir, 'new'))[0]);
  // every key string in the attribute dict, one per file (as an admin would cut them out)
  const keys: string[] = [];
  for (const [i, line] of readFileSync(join(maildir, 'dovecot-attributes'), 'utf8').split('\n').entries()) {
    if (!/^2:/.test(line)) continue;
    keys.push(join(dv.dir, `key${i}`));
    writeFileSync(keys.at(-1)!, line + '\n');
  }
  const noNewline = join(dv.dir, 'key-no-newline');
  writeFileSync(noNewline, readFileSync(keys[0], 'utf8').trim());
  const plain = join(dv.dir, 'plain.txt');
  writeFileSync(plain, 'just text\n');
  const empty = join(dv.dir, 'empty');
  writeFileSync(empty, '');
  assert.ok(keys.length >= 4, 'public and private keys of the user and folder');

  const cases: string[][] = [
    ['dump', mail],
    ['dump', '-t', 'dcrypt-file', mail],
    ...keys.map((k) => ['dump', k]),
    ...keys.map((k) => ['dump', '-t', 'dcrypt-key', k]),
    ['dump', noNewline],
    ['dump', '-t', 'dcrypt-key', mail],
    ['dump', '-t', 'dcrypt-file', keys[0]],
    ['dump', '-t', 'dcrypt-file', plain],
    ['dump', '-t', 'dcrypt-key', plain],
    ['dump', plain],
    ['dump', empty],
    ['dump', join(dv.dir, 'missing')],
    ['dump', '-t', 'dcrypt-key', join(dv.dir, 'missing')],
    ['dump', '-t', 'dcrypt-file', join(dv.dir, 'missing')],
    ['dump', '-t', 'bogus', plain],
    ['dump'],
  ];
  for (const args of cases) {
    const label = args.join(' ');
    const want = dv.doveadm(args);
    const got: SpawnSyncReturns<string> = spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(got.stdout, want.stdout, `stdout: ${label}\nsealadm stderr: ${got.stderr}`);
    assert.equal(got.status, want.status, `exit code: ${label}\ndoveadm: ${want.stderr}\nsealadm: ${got.stderr}`);
    if (args.length > 1) assert.equal(got.stderr, want.stderr.replace(/^doveadm\(\d+\): /gm, ''), `stderr: ${label}`);
  }
});
