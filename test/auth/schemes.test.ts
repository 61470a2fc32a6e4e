/**
 * Password schemes against the real Dovecot: committed vectors made by
 * `doveadm pw` verify here (and fail with a wrong password), hashes we make
 * verify in `doveadm pw -t` (run live when Dovecot is installed), and bad
 * input gives a clean SchemeError that leaks neither hash nor password.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { hashPassword, SchemeError, verifyPassword } from '../../src/auth/schemes/index.js';
import { fixturesDir } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';

const PW = Buffer.from('summer sün', 'utf8');
const vectors = readFileSync(join(fixturesDir, 'pw', 'doveadm-vectors.txt'), 'utf8').split('\n').filter((l) => l.startsWith('{'));

test('every doveadm pw vector verifies, and a wrong password does not', async () => {
  assert.ok(vectors.length >= 25);
  for (const v of vectors) {
    assert.equal(await verifyPassword(PW, v, { defaultScheme: 'MD5', user: 'u' }), true, v);
    assert.equal(await verifyPassword(Buffer.from('summer sun'), v, { defaultScheme: 'MD5', user: 'u' }), false, v);
  }
});

test('unprefixed hashes use default_pass_scheme; scheme names are case-insensitive', async () => {
  const md5crypt = vectors.find((v) => v.startsWith('{MD5-CRYPT}'))!.slice('{MD5-CRYPT}'.length);
  assert.equal(await verifyPassword(PW, md5crypt, { defaultScheme: 'MD5', user: 'u' }), true);
  const blf = vectors.find((v) => v.startsWith('{BLF-CRYPT}'))!;
  assert.equal(await verifyPassword(PW, blf.replace('{BLF-CRYPT}', '{blf-crypt}'), { defaultScheme: 'PLAIN', user: 'u' }), true);
  // password_noscheme: a leading { is data
  assert.equal(await verifyPassword(Buffer.from('{x}y'), '{x}y', { defaultScheme: 'PLAIN', user: 'u', noScheme: true }), true);
  // Roundcube's {CRYPT}$2y$12$ rows verify as bcrypt
  const crypt12 = await hashPassword('BLF-CRYPT', PW, { rounds: 6 });
  assert.equal(await verifyPassword(PW, crypt12.replace('{BLF-CRYPT}', '{CRYPT}'), { defaultScheme: 'MD5', user: 'u' }), true);
});

test('bad input: unknown scheme, malformed hashes → SchemeError without secrets', async () => {
  const cases = ['{FOO}abc', '{SSHA}!!!notbase64', '{ARGON2ID}$argon2id$broken', '{PBKDF2}nonsense', '{CRYPT}$9$x$y', '{SHA256.HEX}zz'];
  for (const c of cases) {
    await assert.rejects(verifyPassword(Buffer.from('secret-pw'), c, { defaultScheme: 'PLAIN', user: 'u' }), (e: unknown) => {
      assert.ok(e instanceof SchemeError, `${c}: ${String(e)}`);
      assert.ok(!e.message.includes('secret-pw'));
      assert.ok(!e.message.includes(c.slice(c.indexOf('}') + 1)) || c.endsWith('zz'));
      return true;
    });
  }
  await assert.rejects(hashPassword('NOPE', PW), SchemeError);
});

test('hashes made by Sealmail verify in the real doveadm pw -t', async (t) => {
  const doveadm = requireTool(t, 'doveadm');
  if (!doveadm) return;
  const schemes = ['BLF-CRYPT', 'CRYPT', 'SHA512-CRYPT', 'SHA256-CRYPT', 'MD5-CRYPT', 'SSHA512', 'SSHA256', 'SSHA', 'SHA512', 'SHA256', 'SHA', 'SMD5', 'PLAIN-MD5', 'LDAP-MD5', 'PLAIN', 'CRAM-MD5', 'PBKDF2', 'ARGON2I', 'ARGON2ID', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'SHA256.HEX', 'SSHA.B64'];
  for (const s of schemes) {
    const h = await hashPassword(s, PW);
    const r: SpawnSyncReturns<string> = spawnSync(doveadm, ['pw', '-t', h, '-p', 'summer sün'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `${s}: ${h}: ${r.stderr}`);
    assert.equal(r.stdout, `${h} (verified)\n`);
  }
});
