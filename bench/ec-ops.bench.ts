/**
 * The two EC operations mail-crypt does per delivered message — one key
 * generation (base-point multiplication) and one ECDH (variable-point
 * multiplication) — per curve and per implementation Node can reach:
 * node:crypto's ECDH objects (what src/crypt/keys.ts uses), node:crypto
 * KeyObjects (generateKeyPairSync + diffieHellman), WebCrypto
 * (subtle.generateKey + deriveBits) — all three on Node's bundled OpenSSL —
 * and @noble/curves (pure JS). The system's OpenSSL (`openssl speed`, what
 * Dovecot links) is printed beside them as the bound: Node cannot use it.
 * EC_OPS_MS (default 600) is the time spent per figure; the machine is shared.
 */
import { spawnSync } from 'node:child_process';
import { createECDH, createPublicKey, diffieHellman, generateKeyPairSync, webcrypto, type KeyObject } from 'node:crypto';
import { p256, p521 } from '@noble/curves/nist.js';
import { newV2Header } from '../src/crypt/container.js';
import { curveByName, publicFromPoint } from '../src/crypt/keys.js';
import type { BenchRow } from './harness.js';

const MS = Number(process.env.EC_OPS_MS ?? 600);

/** Operations per second of fn, run for about MS milliseconds after a short warm-up. */
async function opsPerSec(fn: () => unknown): Promise<number> {
  for (let i = 0; i < 3; i++) await fn();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < MS) { await fn(); n++; }
  return n / ((performance.now() - t0) / 1000);
}

/** `openssl speed` of the system's OpenSSL for one ECDH curve (derive ops/s), or NaN. */
function systemOpensslEcdh(name: 'ecdhp256' | 'ecdhp521'): number {
  const r = spawnSync('openssl', ['speed', '-seconds', String(Math.max(1, Math.round(MS / 1000))), name], { encoding: 'utf8' });
  if (r.status !== 0) return NaN;
  // "... 256 bits ecdh (nistp256)   0.0001s   14345.5" — the last number is ops/s
  const line = r.stdout.split('\n').find((l) => /bits ecdh \(nistp/.test(l));
  return line ? Number(line.trim().split(/\s+/).pop()) : NaN;
}

/** CPU milliseconds (user + system) per call of fn: steadier than wall time on a shared machine. */
function cpuMsPerCall(fn: () => unknown): number {
  for (let i = 0; i < 3; i++) fn();
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() - t0 < MS) { fn(); n++; }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / n;
}

const fmt = (n: number) => (Number.isNaN(n) ? 'n/a' : `${n >= 100 ? n.toFixed(0) : n.toFixed(1)}/s`);

export default async function (): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const [label, curve, noble, webName, sysName] of [
    ['P-256', 'prime256v1', p256, 'P-256', 'ecdhp256'],
    ['P-521', 'secp521r1', p521, 'P-521', 'ecdhp521'],
  ] as const) {
    const peer = createECDH(curve);
    peer.generateKeys();
    const peerPoint = peer.getPublicKey();
    const mine = createECDH(curve);
    mine.generateKeys();
    const kp = generateKeyPairSync('ec', { namedCurve: curve });
    const peerKo: KeyObject = createPublicKey({ key: { kty: 'EC', crv: webName, x: peerPoint.subarray(1, 1 + (peerPoint.length - 1) / 2).toString('base64url'), y: peerPoint.subarray(1 + (peerPoint.length - 1) / 2).toString('base64url') }, format: 'jwk' });
    const subtle = webcrypto.subtle;
    const alg = { name: 'ECDH', namedCurve: webName };
    const wkp = (await subtle.generateKey(alg, false, ['deriveBits'])) as webcrypto.CryptoKeyPair;
    const wpeer = await subtle.importKey('raw', peerPoint, alg, false, []);
    const bits = curve === 'secp521r1' ? 528 : 256;
    const nobleSk = noble.utils.randomSecretKey();

    const impls: [string, () => unknown, () => unknown][] = [
      ['node:crypto createECDH', () => createECDH(curve).generateKeys(), () => mine.computeSecret(peerPoint)],
      ['node:crypto KeyObject', () => generateKeyPairSync('ec', { namedCurve: curve }), () => diffieHellman({ privateKey: kp.privateKey, publicKey: peerKo })],
      ['WebCrypto subtle', () => subtle.generateKey(alg, false, ['deriveBits']), () => subtle.deriveBits({ name: 'ECDH', public: wpeer }, wkp.privateKey, bits)],
      ['@noble/curves', () => noble.getPublicKey(noble.utils.randomSecretKey()), () => noble.getSharedSecret(nobleSk, peerPoint)],
    ];
    for (const [impl, keygen, derive] of impls) {
      const g = await opsPerSec(keygen);
      const d = await opsPerSec(derive);
      rows.push({ name: `EC ops ${label}, ${impl}: keygen / ECDH`, sealmail: `${fmt(g)} / ${fmt(d)}`, note: `${(1000 / g + 1000 / d).toFixed(2)} ms per delivered message (keygen + ECDH)` });
    }
    // the whole per-message header as delivery builds it on a crypt worker
    const to = publicFromPoint(curveByName(curve), peerPoint);
    rows.push({ name: `mail-crypt ${label}: one message's v2 header (newV2Header), CPU per message`, sealmail: `${cpuMsPerCall(() => newV2Header(to)).toFixed(2)} ms`, note: 'ephemeral keygen + ECDH + PBKDF2 (2048) + AES-CBC wrap + 2048-round key-data check' });
    const sys = systemOpensslEcdh(sysName);
    rows.push({ name: `EC ops ${label}, system OpenSSL (openssl speed ${sysName}): ECDH`, sealmail: 'not reachable from Node', dovecot: fmt(sys), note: `${spawnSync('openssl', ['version'], { encoding: 'utf8' }).stdout.trim()}; Node ${process.versions.node} bundles OpenSSL ${process.versions.openssl}` });
  }
  return rows;
}
