/** `sealadm pw` against `doveadm pw`: same output lines and exit codes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { sealadmJs } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';

const ours = (args: string[], input?: string) => spawnSync(process.execPath, [sealadmJs, 'pw', ...args], { encoding: 'utf8', timeout: 120_000, input });

test('pw: scheme output, -V, -t, -r clamping, stdin passwords, errors and exit codes', () => {
  assert.match(ours(['-p', 'x']).stdout, /^\{CRYPT\}\$2y\$05\$[./A-Za-z0-9]{53}\n$/);
  assert.match(ours(['-s', 'blf-crypt', '-r', '3', '-p', 'x']).stdout, /^\{BLF-CRYPT\}\$2y\$04\$/);
  assert.match(ours(['-s', 'SHA512-CRYPT', '-p', 'x', '-V']).stdout, /^\{SHA512-CRYPT\}\$6\$[^$]{16}\$[^$]{86} \(verified\)\n$/);
  assert.equal(ours(['-t', '{PLAIN}x', '-p', 'x']).stdout, '{PLAIN}x (verified)\n');
  const bad = ours(['-t', '{PLAIN}x', '-p', 'y']);
  assert.equal(bad.status, 75);
  assert.equal(bad.stderr, 'Fatal: reverse password verification check failed: Password mismatch\n');
  const unk = ours(['-s', 'FOO', '-p', 'x']);
  assert.equal(unk.status, 75);
  assert.equal(unk.stderr, 'Fatal: Unknown scheme: FOO\n');
  assert.equal(ours(['-t', '{FOO}x', '-p', 'x']).stderr, 'Fatal: reverse decode check failed: Unknown scheme\n');
  assert.equal(ours(['-s', 'PLAIN'], 'abc\nabc\n').stdout, '{PLAIN}abc\n');
  assert.equal(ours(['-t', '{PLAIN}abc'], 'abc\n').stdout, '{PLAIN}abc (verified)\n');
  const mismatch = ours(['-s', 'PLAIN'], 'abc\nabd\n');
  assert.equal(mismatch.status, 65);
  assert.equal(mismatch.stdout, '');
  assert.equal(ours(['-x']).status, 64);
});

test('pw: the same results as the real doveadm pw', (t) => {
  const doveadm = requireTool(t, 'doveadm');
  if (!doveadm) return;
  const cases = [['-t', '{PLAIN}x', '-p', 'x'], ['-t', '{PLAIN}x', '-p', 'y'], ['-s', 'FOO', '-p', 'x'], ['-t', '{FOO}x', '-p', 'x'], ['-s', 'PLAIN', '-p', 'a b', '-V'], ['-s', 'plain-md5', '-p', 'pw']];
  for (const args of cases) {
    const theirs: SpawnSyncReturns<string> = spawnSync(doveadm, ['pw', ...args], { encoding: 'utf8', timeout: 120_000 });
    const mine = ours(args);
    assert.equal(mine.status, theirs.status, args.join(' '));
    assert.equal(mine.stdout, theirs.stdout, args.join(' '));
    assert.equal(mine.stderr, theirs.stderr, args.join(' '));
  }
});
