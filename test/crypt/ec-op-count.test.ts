/**
 * How many EC scalar multiplications mail-crypt asks OpenSSL for, counted by
 * keys.ts's ecOps (no timing). The format needs, per message written, one
 * ephemeral key pair (base-point multiplication) and one ECDH with the folder
 * key; per message read, one ECDH with the folder private key, which is
 * loaded once (one multiplication for its public point, then reused). On
 * P-521 each multiplication costs milliseconds on Node's bundled OpenSSL.
 * The same counts hold for folder keys wrapped to the user key (enctype 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CURVES, decryptPrivateKey, ecOps, generateKey, parsePrivateKeyString, privateFromScalar, privateKeyStringToKey,
  publicFromPoint, type PrivateKey,
} from '../../src/crypt/keys.js';
import { newV2Header, parseHeader, unwrapKeyData, type V2Header } from '../../src/crypt/container.js';

/** Multiplications done by fn, and its result. */
function counted<T>(fn: () => T): [number, T] {
  const before = ecOps.multiplications;
  const r = fn();
  return [ecOps.multiplications - before, r];
}

for (const curve of CURVES.filter((c) => c.name !== 'secp384r1')) {
  test(`${curve.name}: writing a message costs one keygen + one ECDH, reading one ECDH`, () => {
    const folder = generateKey(curve);
    // what the worker gets: the folder public key as curve + point, a fresh object per job
    const to = publicFromPoint(curve, Buffer.from(folder.point));
    for (let i = 0; i < 3; i++) {
      const [n] = counted(() => newV2Header(to));
      assert.equal(n, 2, `message ${i}: ${n} multiplications to encrypt (2 suffice: ephemeral keygen + ECDH)`);
    }

    // the folder private key as the worker rebuilds it from its scalar: loading it is the one multiplication
    const [loadN, key] = counted(() => privateFromScalar(curve, Buffer.from(folder.d)));
    assert.equal(loadN, 1);
    for (let i = 0; i < 3; i++) {
      const { header, keydata } = newV2Header(to);
      const h = parseHeader(header) as V2Header;
      const [n, got] = counted(() => unwrapKeyData(h, key));
      assert.deepEqual(got, keydata);
      assert.equal(n, 1, `message ${i}: ${n} multiplications to decrypt (1 suffices: ECDH with the loaded key)`);
    }
  });

  test(`${curve.name}: a folder key wrapped to the user key: keygen + ECDH to wrap, ECDH + load to open`, () => {
    const user: PrivateKey = generateKey(curve);
    const folder = generateKey(curve);
    const [wrapN, str] = counted(() => privateKeyStringToKey(folder, publicFromPoint(curve, Buffer.from(user.point))));
    assert.equal(wrapN, 2);
    const userLoaded = privateFromScalar(curve, Buffer.from(user.d));
    // ECDH with the user key, then the folder scalar's public point (the id check needs it)
    const [openN, opened] = counted(() => decryptPrivateKey(parsePrivateKeyString(str), { encKey: userLoaded }));
    assert.equal(openN, 2);
    assert.deepEqual(opened.d, folder.d);
    assert.deepEqual(opened.point, folder.point);
  });
}

test('a freshly generated key is padded to the field size and usable for ECDH', () => {
  for (const curve of CURVES) {
    for (let i = 0; i < 20; i++) {
      const k = generateKey(curve);
      assert.equal(k.d.length, curve.size);
      const again = privateFromScalar(curve, k.d);
      assert.deepEqual(again.point, k.point);
    }
  }
});
