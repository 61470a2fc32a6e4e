/**
 * Two first logins of a mail-crypt user at the same moment (two IMAP
 * processes, each with its own keystore on the same attribute dict) must end
 * up with one user key: the second to write takes the key the first made
 * (Dovecot makes one under its dict lock). Two keys sealed the user's index
 * files differently in each process (found by the consistency tester).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { UserKeystore } from '../../src/crypt/keystore.js';
import { AttributeDict } from '../../src/crypt/attributes.js';
import { tempDir } from '../helpers/tmp.js';

test('mail-crypt: concurrent first logins share one user key', async (t) => {
  const path = join(tempDir(t), 'dovecot-attributes');
  const guid = '0123456789abcdef0123456789abcdef';
  const password = Buffer.from('pass');
  const a = new UserKeystore(new AttributeDict(path), guid, 'carol@example.org');
  const b = new UserKeystore(new AttributeDict(path), guid, 'carol@example.org');
  const [ra, rb] = await Promise.all([a.ensureUserKey('prime256v1', password, true), b.ensureUserKey('prime256v1', password, true)]);
  assert.equal(ra.id, rb.id, 'one key for both');
  assert.equal([ra.created, rb.created].filter(Boolean).length, 1, 'made once');
  const [ka, kb] = [await a.activeUserKey(), await b.activeUserKey()];
  assert.ok(ka && kb, 'both hold the active key');
  assert.equal(await a.activeUserKeyId(), ra.id);
});
