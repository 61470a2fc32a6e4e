/**
 * Streaming compression as Dovecot's zlib plugin applies it to a message
 * body: decompress() turns a stored (already decrypted) stream in any
 * format Sealmail reads into the plaintext, chunk by chunk and bounded by
 * an output limit; compress() is what zlib_save writes (gz through Node's
 * zlib, Dovecot's lz4 framing through ./lz4.ts). gz goes through Node's
 * gunzip, which, like Dovecot's istream-zlib, reads concatenated members.
 */
import { createGunzip, createGzip } from 'node:zlib';
import { Bzip2Decoder } from './bzip2.js';
import { FORMATS, type CompressionFormat } from './formats.js';
import { CorruptStream, runUnits, type UnitDecoder } from './input.js';
import { Lz4Decoder, lz4Compress } from './lz4.js';
import { XzDecoder } from './xz.js';
import { ZstdDecoder } from './zstd.js';

async function* through(stream: NodeJS.ReadWriteStream & { destroy(e?: Error): void }, src: AsyncIterable<Buffer>, limit: number, name: string): AsyncIterable<Buffer> {
  let failed: Error | null = null;
  let stopped = false;
  const it = src[Symbol.asyncIterator]();
  // a 'close' ends the wait too: a stream destroyed by an early stop never drains
  const drained = () => new Promise<void>((resolve) => {
    const done = () => { stream.off('drain', done); stream.off('close', done); resolve(); };
    stream.once('drain', done); stream.once('close', done);
  });
  const feed = (async () => {
    try {
      for (;;) {
        const r = await it.next();
        if (r.done || stopped) break;
        if (!stream.write(r.value)) await drained();
        if (stopped) break;
      }
      if (!stopped) stream.end();
    } catch (e) { failed = e as Error; stream.destroy(e as Error); }
    finally { if (stopped) await it.return?.(); }
  })();
  let total = 0;
  try {
    for await (const out of stream as AsyncIterable<Buffer>) {
      total += out.length;
      if (total > limit) throw new CorruptStream(`${name} output exceeds ${limit} bytes (decompression bomb?)`);
      yield out;
    }
  } catch (e) {
    if (failed) throw failed;
    if (e instanceof CorruptStream) throw e;
    throw new CorruptStream(`${name}: ${(e as Error).message}`);
  } finally {
    stopped = true;
    stream.destroy();
    await feed;
  }
  if (failed) throw failed;
}

function unitDecoder(format: CompressionFormat): UnitDecoder | null {
  switch (format) {
    case 'bz2': return new Bzip2Decoder();
    case 'lz4': return new Lz4Decoder();
    case 'zstd': return new ZstdDecoder();
    case 'xz': return new XzDecoder();
    default: return null;
  }
}

/** The plaintext of a stored stream in `format`; CorruptStream on bad data or more than `limit` bytes. */
export function decompress(format: CompressionFormat, src: AsyncIterable<Buffer>, limit: number): AsyncIterable<Buffer> {
  if (format === 'gz') return through(createGunzip(), src, limit, 'gz');
  const dec = unitDecoder(format);
  if (!dec) throw new CorruptStream(`Detected ${FORMATS[format].ext} compression but Sealmail cannot read it`);
  return runUnits(dec, src, limit, format);
}

/** What zlib_save writes, for the formats Sealmail writes (FORMATS[f].write). */
export function compress(format: CompressionFormat, level: number, src: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  if (format === 'gz') return through(createGzip({ level }), src, Number.MAX_SAFE_INTEGER, 'gz');
  if (format === 'lz4') return lz4Compress(src);
  throw new Error(`zlib_save = ${format}: Sealmail cannot write it`);
}
