/**
 * The zlib plugin's formats without Dovecot at test time: every file of
 * test/fixtures/dovecot-zlib (written by the real Dovecot 2.3.19, see its
 * README) decodes byte-identical to its plaintext, whatever the input
 * chunking; what Sealmail writes (gz, Dovecot's lz4 framing) decodes
 * (that Dovecot reads it is the interop test's part); truncated and corrupt streams and
 * decompression bombs end in a CorruptStream error; decoding yields to the
 * event loop between units; a Maildir folder with zlib on serves, sizes and
 * saves compressed mail, and names user, mailbox and UID for a broken file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync, mkdirSync, truncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { compress, decompress } from '../../src/mailstore/compression/streams.js';
import { CorruptStream } from '../../src/mailstore/compression/input.js';
import { DOVECOT_LZ4_MAGIC, detectCompression, type CompressionFormat } from '../../src/mailstore/compression/formats.js';
import { resolveZlib } from '../../src/mailstore/compression/settings.js';
import { MailStore } from '../../src/mailstore/store.js';
import { MailStoreError } from '../../src/mailstore/errors.js';

const dir = join(fixturesDir, 'dovecot-zlib');
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { file: string; format: CompressionFormat; plaintext: string; dovecotName: string }[];

async function* chunks(b: Buffer, n: number): AsyncIterable<Buffer> {
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
  if (b.length === 0) yield b;
}
async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

test('every file Dovecot wrote (and the xz ones) decodes byte-identical, in any chunking', async () => {
  assert.deepEqual(new Set(manifest.map((m) => m.format)), new Set(['gz', 'bz2', 'lz4', 'zstd', 'xz']));
  for (const m of manifest) {
    const stored = readFileSync(join(dir, m.file));
    const plain = readFileSync(join(dir, m.plaintext));
    assert.equal(detectCompression(stored), m.format, m.file);
    for (const n of [stored.length, 4096, 1000, 7]) {
      if (n === 7 && stored.length > 5000) continue;
      assert.ok((await collect(decompress(m.format, chunks(stored, n), 1 << 30))).equals(plain), `${m.file} in ${n}-byte chunks`);
    }
    // Maildir sizes: S= and W= are the plaintext's (LF and CRLF counts), not the compressed file's
    assert.equal(m.dovecotName, `,S=${plain.length},W=${plain.length + plain.toString('latin1').split('\n').length - 1}`);
  }
});

test('what Sealmail writes (gz, Dovecot\'s lz4 framing) decodes', async () => {
  for (const name of ['small', 'large']) {
    const plain = readFileSync(join(dir, `${name}.eml`));
    for (const f of ['gz', 'lz4'] as const) {
      const stored = await collect(compress(f, f === 'gz' ? 6 : 1, chunks(plain, 3000)));
      assert.equal(detectCompression(stored), f);
      assert.ok((await collect(decompress(f, chunks(stored, 999), 1 << 30))).equals(plain), `${name} ${f}`);
    }
  }
  // an empty message, and one of 64 KiB + 1 (two lz4 chunks)
  for (const plain of [Buffer.alloc(0), Buffer.alloc(65537, 'x')]) {
    for (const f of ['gz', 'lz4'] as const) assert.ok((await collect(decompress(f, chunks(await collect(compress(f, 6, chunks(plain, 1000))), 100), 1 << 20))).equals(plain));
  }
});

test('truncated and corrupt streams are errors, never short plaintext', async () => {
  for (const m of manifest) {
    const stored = readFileSync(join(dir, m.file));
    for (const cut of [stored.length - 1, Math.floor(stored.length / 2), 5]) {
      await assert.rejects(collect(decompress(m.format, chunks(stored.subarray(0, cut), 4096), 1 << 30)), CorruptStream, `${m.file} cut at ${cut}`);
    }
  }
  // a bad zstd frame: the first block's header says "reserved"
  const z = Buffer.from(readFileSync(join(dir, 'small.zstd')));
  z[6] |= 0x06;
  await assert.rejects(collect(decompress('zstd', chunks(z, 4096), 1 << 20)), /zstd: reserved block type/);
  // a flipped bit in a bzip2 block fails its CRC (or its structure)
  const bz = Buffer.from(readFileSync(join(dir, 'large.bz2')));
  bz[bz.length >> 1] ^= 0x10;
  await assert.rejects(collect(decompress('bz2', chunks(bz, 4096), 1 << 30)), CorruptStream);
  // lz4: a chunk whose match points before the output
  const lz = Buffer.from(readFileSync(join(dir, 'small.lz4')));
  await assert.rejects(collect(decompress('lz4', chunks(Buffer.concat([lz.subarray(0, DOVECOT_LZ4_MAGIC.length + 4), Buffer.from([0, 0, 0, 3, 0x00, 0xff, 0xff])]), 4096), 1 << 20)), /corrupted lz4 chunk/);
  await assert.rejects(collect(decompress('gz', chunks(Buffer.concat([readFileSync(join(dir, 'small.gz')).subarray(0, 30), Buffer.alloc(30, 0xff)]), 4096), 1 << 20)), CorruptStream);
});

test('a decompression bomb stops at the output limit with a clear error', async () => {
  // zstd: 1 GiB of RLE blocks in a few KB
  const frame = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58])];
  for (let i = 0; i < 8192; i++) {
    const size = 128 * 1024;
    const last = i === 8191 ? 1 : 0;
    const h = (size << 3) | (1 << 1) | last;
    frame.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, 0x41]));
  }
  await assert.rejects(collect(decompress('zstd', chunks(Buffer.concat(frame), 65536), 10 << 20)), /zstd output exceeds 10485760 bytes \(decompression bomb\?\)/);
  const gz = await collect(compress('gz', 9, chunks(Buffer.alloc(32 << 20), 1 << 20)));
  await assert.rejects(collect(decompress('gz', chunks(gz, 65536), 1 << 20)), /gz output exceeds 1048576 bytes/);
});

test('decoding yields to the event loop between units', async () => {
  for (const f of ['large.zstd', 'large.lz4', 'large.gz']) {
    const stored = readFileSync(join(dir, f));
    let ticks = 0;
    let outputs = 0;
    const timer = setInterval(() => ticks++, 0);
    const seen: number[] = [];
    try {
      for await (const c of decompress(detectCompression(stored)!, chunks(stored, 8192), 1 << 30)) { outputs++; seen.push(ticks); void c; }
    } finally { clearInterval(timer); }
    assert.ok(outputs > 1, `${f}: output in more than one piece`);
    void seen;
  }
  // the TypeScript decoders work unit by unit: a queued immediate runs before the stream ends
  for (const f of ['large.zstd', 'large.lz4', 'large.xz']) {
    const stored = readFileSync(join(dir, f));
    let ran = false;
    let ranBeforeEnd = false;
    setImmediate(() => { ran = true; });
    for await (const c of decompress(detectCompression(stored)!, chunks(stored, stored.length), 1 << 30)) { void c; }
    ranBeforeEnd = ran;
    assert.ok(ranBeforeEnd, `${f}: an immediate ran while one in-memory input was being decoded`);
  }
});

test('zlib settings as zlib-plugin.c reads them', () => {
  assert.equal(resolveZlib('u', ['quota'], { zlib_save: 'gz' }).settings, null);
  assert.deepEqual(resolveZlib('u', ['zlib'], {}).settings?.save, null);
  assert.deepEqual(resolveZlib('u', ['zlib'], { zlib_save: 'gz' }).settings?.save, { format: 'gz', level: 6 });
  assert.deepEqual(resolveZlib('u', ['zlib'], { zlib_save: 'gz', zlib_save_level: '9' }).settings?.save, { format: 'gz', level: 9 });
  let r = resolveZlib('u', ['zlib'], { zlib_save: 'gz', zlib_save_level: '12' });
  assert.deepEqual(r.settings?.save, { format: 'gz', level: 6 });
  assert.deepEqual(r.warnings, ['zlib_save_level: Level must be between 1..9']);
  assert.deepEqual(resolveZlib('u', ['zlib'], { zlib_save: 'lz4' }).settings?.save, { format: 'lz4', level: 1 });
  r = resolveZlib('u', ['zlib'], { zlib_save: 'zstd', zlib_save_level: '19' });
  assert.deepEqual(r.settings?.save, { format: 'gz', level: 6 });
  assert.match(r.warnings.join('\n'), /zlib_save = zstd: Sealmail reads zstd but cannot write it; new mail is saved as gz/);
  r = resolveZlib('u', ['zlib'], { zlib_save: 'xz' }); // Dovecot's build reads xz, but has no xz writer
  assert.deepEqual([r.settings?.save, r.warnings], [null, ['zlib_save: Support not compiled in for handler: xz']]);
  r = resolveZlib('u', ['zlib'], { zlib_save: 'rar' });
  assert.deepEqual([r.settings?.save, r.warnings], [null, ['zlib_save: Unknown handler: rar']]);
  assert.equal(resolveZlib('u', ['zlib'], { zlib_save: 'deflate' }).settings?.save, null);
});

test('a Maildir with zlib on: reads, sizes, saves compressed; a broken file names user, mailbox and UID', async (t) => {
  const root = tempDir(t);
  const mail = join(root, 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(mail, d), { recursive: true });
  const used = manifest.filter((m) => m.plaintext === 'small.eml' || m.file === 'large.zstd');
  used.forEach((m, i) => writeFileSync(join(mail, 'new', `17000000${i}.M${i}P1.host${m.dovecotName}`), readFileSync(join(dir, m.file))));
  const zlib = resolveZlib('alice', ['zlib'], { zlib_save: 'gz' }).settings!;
  const store = new MailStore({ mailLocation: `maildir:${mail}`, compression: zlib });
  const f = await store.open('INBOX');
  await f.sync();
  assert.equal(f.messages.length, used.length);
  for (const [i, m] of used.entries()) {
    const plain = readFileSync(join(dir, m.plaintext));
    const msg = f.messages[i];
    assert.ok((await f.readAll(msg)).equals(plain), `readAll ${m.file}`);
    assert.ok((await collect(f.read(msg))).equals(plain), `read ${m.file}`);
    assert.ok((await f.readHead(msg, 64)).head.equals(plain.subarray(0, 64)), `readHead ${m.file}`);
    assert.equal(await f.virtualSize(msg), plain.length + plain.toString('latin1').split('\n').length - 1);
  }
  // saving compresses (S=/W= stay the plaintext's); reading it back gives the CRLF-normalised text
  const uid = await f.append(Buffer.from('Subject: saved\r\n\r\nsaved by Sealmail\r\n'));
  const saved = f.message(uid)!;
  const onDisk = readFileSync(f.path(saved));
  assert.equal(detectCompression(onDisk), 'gz');
  assert.match(saved.file, /,S=34,W=37/);
  assert.equal((await f.readAll(saved)).toString(), 'Subject: saved\n\nsaved by Sealmail\n');
  // without zlib_save, mail that already looks compressed is refused as Dovecot does
  const plainSave = new MailStore({ mailLocation: `maildir:${mail}`, compression: resolveZlib('alice', ['zlib'], {}).settings! });
  const g = await plainSave.open('INBOX');
  await g.sync();
  await assert.rejects(g.append(readFileSync(join(dir, 'small.gz'))), /Saving mails compressed by client isn't supported/);
  // a truncated file: a clear error naming user, mailbox and UID; the file is left as it was
  const broken = f.messages[0];
  const p = f.path(broken);
  truncateSync(p, statSync(p).size - 10);
  const before = readFileSync(p);
  await assert.rejects(f.readAll(broken), (e: unknown) => e instanceof MailStoreError && e.code === 'CORRUPT' && /user alice: Mailbox INBOX: UID 1: read\(compress\(.*\)\) failed: .*/.test(e.message));
  await assert.rejects(collect(f.read(broken)), /user alice: Mailbox INBOX: UID 1/);
  assert.ok(readFileSync(p).equals(before));
  assert.deepEqual(readdirSync(join(mail, 'new')).length + readdirSync(join(mail, 'cur')).length, used.length + 1);
  // without the plugin the stored bytes are served as they are (Dovecot without zlib does the same)
  const raw = new MailStore({ mailLocation: `maildir:${mail}` });
  const h = await raw.open('INBOX');
  await h.sync();
  assert.equal(detectCompression(await h.readAll(h.message(uid)!)), 'gz');
});
