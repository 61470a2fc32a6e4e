/**
 * What the MODSEQ bookkeeping (sealmail.modseq, RFC 7162) costs on a big
 * folder (MODSEQ_BENCH_N, default 100k): the full scan a cold SELECT does,
 * and a STORE on every message, each with the bookkeeping on and off (off =
 * a handle whose cipher cannot seal, which skips it: the same code path
 * otherwise), plus the sealed variant (AES-256-GCM, a mail-crypt user).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { tempDir } from '../test/helpers/tmp.js';
import type { IndexCipher } from '../src/crypt/codec.js';
import { identityCipher } from '../src/crypt/codec.js';
import { MailStore } from '../src/mailstore/store.js';
import { ModseqState } from '../src/mailstore/maildir/modseq.js';
import type { BenchRow } from './harness.js';

const N = Number(process.env.MODSEQ_BENCH_N ?? 100_000);

const key = randomBytes(32);
const aes: IndexCipher = {
  seal(p) { const iv = randomBytes(12); const c = createCipheriv('aes-256-gcm', key, iv); const b = Buffer.concat([c.update(p), c.final()]); return Buffer.concat([iv, c.getAuthTag(), b]); },
  open(s) { const d = createDecipheriv('aes-256-gcm', key, s.subarray(0, 12)); d.setAuthTag(s.subarray(12, 28)); return Buffer.concat([d.update(s.subarray(28)), d.final()]); },
};
const off: IndexCipher = { seal() { throw new Error('off'); }, open() { throw new Error('off'); } };

function ms(t0: bigint): number { return Number(process.hrtime.bigint() - t0) / 1e6; }

async function run(home: string, cipher: IndexCipher): Promise<{ scan: number; store: number }> {
  ModseqState.forgetAll();
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home, cipher });
  const f = await store.open('INBOX');
  let t0 = process.hrtime.bigint();
  await f.sync();
  const scan = ms(t0);
  t0 = process.hrtime.bigint();
  for (const m of f.messages) {
    const fl = new Set(m.flags);
    if (fl.has('\\Flagged')) fl.delete('\\Flagged'); else fl.add('\\Flagged');
    await f.setFlags(m, fl, m.keywords, { deferModseq: true });
  }
  await f.commitModseqs();
  return { scan, store: ms(t0) };
}

export default async function modseqBench(): Promise<BenchRow[]> {
  const home = tempDir(null);
  const root = join(home, 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(root, d), { recursive: true });
  const body = 'From: a@example.org\nSubject: bench\n\nhello\n';
  for (let i = 0; i < N; i++) writeFileSync(join(root, 'cur', `${1700000000 + Math.floor(i / 1000)}.M${i % 1000}P1.bench,S=${body.length},W=${body.length + 4}:2,S`), body);
  await run(home, off); // the uidlist gets written once, outside the figures
  const a = await run(home, off);
  const b = await run(home, identityCipher); // first with bookkeeping: writes the snapshot
  const c = await run(home, identityCipher); // a restart: loads and compares it
  const d = await run(home, aes);
  rmSync(home, { recursive: true, force: true });
  const f = (x: number) => `${x.toFixed(0)} ms`;
  return [
    { name: `modseq: full scan of ${N} msgs (cold SELECT), bookkeeping off / on`, sealmail: `${f(a.scan)} / ${f(c.scan)}`, note: `first time (snapshot written): ${f(b.scan)}; sealed AES-GCM, new key so lost = rebuilt: ${f(d.scan)}` },
    { name: `modseq: STORE +/-FLAGS on all ${N} msgs, bookkeeping off / on`, sealmail: `${f(a.store)} / ${f(c.store)}`, note: `sealed: ${f(d.store)}; one appended frame per STORE command` },
  ];
}
