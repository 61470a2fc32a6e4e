/**
 * Found by the ManageSieve fuzz, whose sessions of one user run side by side
 * as a user's Roundcube and Thunderbird do: script storage operations of
 * concurrent sessions in one process collided on their temp names (pid and
 * time only) — SETACTIVE failed with EEXIST, PUTSCRIPT with ENOENT, both
 * answered as internal errors — and a RENAMESCRIPT racing another one hit
 * EEXIST/ENOENT instead of Pigeonhole's ALREADYEXISTS / NONEXISTENT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { ScriptStorage, ScriptError } from '../../src/managesieve/storage.js';

const SCRIPT = Buffer.from('keep;\n');

function sessions(t: import('node:test').TestContext, n: number): { home: string; all: ScriptStorage[] } {
  const home = join(tempDir(t, 'sieve-races'), 'u');
  mkdirSync(home);
  return { home, all: Array.from({ length: n }, () => new ScriptStorage('file:~/sieve;active=~/.dovecot.sieve', { username: 'u', home, fields: [] })) };
}

test('concurrent SETACTIVE and PUTSCRIPT of one user all succeed', async (t) => {
  const { home, all } = sessions(t, 20);
  await all[0].put('a', SCRIPT);
  await all[0].put('b', SCRIPT);
  await Promise.all(all.map((s, i) => s.setActive(i % 2 ? 'a' : 'b')));
  await Promise.all(all.map((s) => s.put('a', SCRIPT)));
  assert.match(readlinkSync(join(home, '.dovecot.sieve')), /^sieve\/[ab]\.sieve$/);
  // no temp file or link left behind
  assert.deepEqual(readdirSync(join(home, 'sieve')).sort(), ['a.sieve', 'b.sieve']);
  assert.deepEqual(readdirSync(home).filter((f) => f.includes('.tmp')), []);
});

test('racing RENAMESCRIPTs: one wins, the others get Pigeonhole\'s answers', async (t) => {
  const { all } = sessions(t, 10);
  await all[0].put('old', SCRIPT);
  const results = await Promise.allSettled(all.map((s) => s.rename('old', 'new')));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) {
    if (r.status === 'rejected') {
      assert.ok(r.reason instanceof ScriptError, String(r.reason));
      assert.ok(['ALREADYEXISTS', 'NONEXISTENT'].includes(r.reason.code), r.reason.code);
    }
  }
  assert.deepEqual(await all[0].list(), [{ name: 'new', active: false }]);
});
