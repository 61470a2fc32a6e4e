/**
 * The in-place SHA-256 of the key-data check (src/crypt/keydata-check.ts)
 * against the definition with node:crypto, one createHash() per round, for
 * random key data, round counts that cross every small case, and the full
 * 2048 rounds. (The Dovecot fixtures in fixtures.test.ts check it against
 * headers Dovecot wrote.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { keyDataCheck } from '../../src/crypt/keydata-check.js';

function reference(keydata: Buffer, rounds: number): Buffer {
  let h = createHash('sha256').update(keydata).digest();
  const buf = Buffer.alloc(36);
  for (let i = 1; i <= rounds; i++) {
    h.copy(buf, 0);
    buf.writeUInt32BE(i, 32);
    h = createHash('sha256').update(buf).digest();
  }
  return h;
}

test('key-data check equals SHA-256 iterated with createHash', () => {
  for (const rounds of [0, 1, 2, 3, 17, 2048]) {
    for (let k = 0; k < 5; k++) {
      const kd = randomBytes(60);
      assert.deepEqual(keyDataCheck(kd, rounds), reference(kd, rounds), `rounds ${rounds}`);
    }
  }
  const ones = Buffer.alloc(60, 0xff);
  assert.deepEqual(keyDataCheck(ones), reference(ones, 2048));
});
