/**
 * mail-crypt's expensive steps on worker threads, so P-521 ECDH (~5 ms) and
 * PBKDF2 never stall the event loop: opening private keys, unwrapping a
 * message key, building a new message header, generating and wrapping keys.
 * Keys cross the thread boundary as curve name + scalar/point bytes.
 */
import { fileURLToPath } from 'node:url';
import { serveJobs, WorkerPool } from '../util/worker-pool.js';
import {
  CryptError, curveByName, decryptPrivateKey, generateKey, parsePrivateKeyString, privateFromScalar,
  privateKeyStringToKey, privateKeyStringWithPassword, publicFromPoint, type PrivateKey, type PublicKey,
} from './keys.js';
import { newV2Header, parseHeader, unwrapKeyData, unwrapV1Key } from './container.js';

export interface WirePriv { curve: string; d: Uint8Array }
export interface WirePub { curve: string; point: Uint8Array }

export type CryptJob =
  | { op: 'open'; str: string; password?: Uint8Array; encKey?: WirePriv }
  | { op: 'unwrap'; header: Uint8Array; key: WirePriv; check: boolean }
  | { op: 'newHeader'; to: WirePub }
  | { op: 'generate'; curve: string }
  | { op: 'wrapToKey'; key: WirePriv; to: WirePub }
  | { op: 'wrapWithPassword'; key: WirePriv; password: Uint8Array };

export const toWirePriv = (k: PrivateKey): WirePriv => ({ curve: k.curve.name, d: k.d });
export const toWirePub = (k: PublicKey): WirePub => ({ curve: k.curve.name, point: k.point });
/** A key rebuilt from its wire form once, then taken from `cache` by its bytes (at most 256 kept). */
function rebuilt<K>(cache: Map<string, K>, curve: string, bytes: Uint8Array, make: () => K): K {
  const id = `${curve}:${Buffer.from(bytes).toString('hex')}`;
  let k = cache.get(id);
  if (!k) {
    k = make();
    if (cache.size > 256) cache.clear();
    cache.set(id, k);
  }
  return k;
}
// the same folder/user keys come back job after job: rebuilding one costs a scalar multiplication
const keyCache = new Map<string, PrivateKey>();
export const fromWirePriv = (w: WirePriv): PrivateKey => rebuilt(keyCache, w.curve, w.d, () => privateFromScalar(curveByName(w.curve), Buffer.from(w.d)));
// and so do the folder public keys every delivery encrypts to: checking a point is on its curve is not free on P-521
const pubCache = new Map<string, PublicKey>();
const fromWirePub = (w: WirePub): PublicKey => rebuilt(pubCache, w.curve, w.point, () => publicFromPoint(curveByName(w.curve), Buffer.from(w.point)));

function run(job: CryptJob): unknown {
  switch (job.op) {
    case 'open': {
      const k = decryptPrivateKey(parsePrivateKeyString(job.str), {
        password: job.password ? Buffer.from(job.password) : undefined,
        encKey: job.encKey ? fromWirePriv(job.encKey) : undefined,
      });
      return toWirePriv(k);
    }
    case 'unwrap': {
      const h = parseHeader(Buffer.from(job.header));
      const k = fromWirePriv(job.key);
      return h.version === 2 ? unwrapKeyData(h, k, job.check) : unwrapV1Key(h, k);
    }
    case 'newHeader': return newV2Header(fromWirePub(job.to));
    case 'generate': return toWirePriv(generateKey(curveByName(job.curve)));
    case 'wrapToKey': return privateKeyStringToKey(fromWirePriv(job.key), fromWirePub(job.to));
    case 'wrapWithPassword': return privateKeyStringWithPassword(fromWirePriv(job.key), Buffer.from(job.password));
  }
}

serveJobs(run, (e) => e instanceof CryptError);

const pool = new WorkerPool<CryptJob>(fileURLToPath(import.meta.url), (m) => new CryptError(m));

export function cryptJob<T>(job: CryptJob): Promise<T> {
  return pool.run<T>(job);
}
