/**
 * sealmail.cache written under one mode is never read under the other: a
 * cache sealed for a mail-crypt user (the sessions before `decrypt-existing`
 * and before mail_crypt is turned off) must not be served as plain values to
 * the identity cipher afterwards, and a plain cache (before mail_crypt is
 * turned on) is dropped, not kept, by a sealing session.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FieldCache, FIELD_CACHE_FILE } from '../../src/mailstore/field-cache.js';
import { identityCipher, type IndexCipher } from '../../src/crypt/codec.js';
import { tempDir } from '../helpers/tmp.js';

function sealing(): IndexCipher {
  const key = randomBytes(32);
  return {
    seal(p) { const iv = randomBytes(12); const c = createCipheriv('aes-256-gcm', key, iv); return Buffer.concat([iv, c.update(p), c.final(), c.getAuthTag()]); },
    open(s) { const d = createDecipheriv('aes-256-gcm', key, s.subarray(0, 12)); d.setAuthTag(s.subarray(s.length - 16)); return Buffer.concat([d.update(s.subarray(12, s.length - 16)), d.final()]); },
  };
}

test('a sealed field cache is not read as plaintext after mail-crypt is turned off', async (t) => {
  const dir = tempDir(t);
  const sealed = new FieldCache(dir, sealing(), 7);
  await sealed.set(1, 'envelope', Buffer.from('("date" "subject")'));
  await sealed.flush();
  const plain = new FieldCache(dir, identityCipher, 7);
  assert.equal(await plain.get(1, 'envelope'), undefined, 'sealed bytes are no ENVELOPE');
});

test('a plain field cache is dropped by a sealing session', async (t) => {
  const dir = tempDir(t);
  const plain = new FieldCache(dir, identityCipher, 7);
  await plain.set(1, 'envelope', Buffer.from('("date" "secret subject")'));
  await plain.flush();
  assert.match(readFileSync(join(dir, FIELD_CACHE_FILE), 'latin1'), /secret subject/);
  const c = sealing();
  const sealed = new FieldCache(dir, c, 7);
  assert.equal(await sealed.get(1, 'envelope'), undefined);
  assert.doesNotMatch(readFileSync(join(dir, FIELD_CACHE_FILE), 'latin1'), /secret subject/, 'no plaintext left at rest');
});
