/**
 * The zlib plugin's place in a message's way to and from disk, as Dovecot
 * stacks it (mail_plugins = zlib mail_crypt): saving compresses the
 * plaintext and mail-crypt encrypts the result; reading decrypts, then a
 * stream whose first bytes carry a known magic is decompressed
 * (zlib_istream_opened: detection by content, whatever zlib_save says).
 */
import { MailStoreError } from '../errors.js';
import { MAGIC_MAX, detectCompression } from './formats.js';
import type { CompressionSettings } from './settings.js';
import { compress, decompress } from './streams.js';

/** The first `n` bytes of a stream (fewer when it is shorter) and the whole stream again. */
async function peek(src: AsyncIterable<Buffer>, n: number): Promise<[Buffer, AsyncIterable<Buffer>]> {
  const it = src[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let len = 0;
  let ended = false;
  while (len < n) {
    const r = await it.next();
    if (r.done) { ended = true; break; }
    head.push(r.value); len += r.value.length;
  }
  const first = Buffer.concat(head);
  async function* rest(): AsyncIterable<Buffer> {
    if (first.length) yield first;
    if (ended) return;
    try {
      for (;;) { const r = await it.next(); if (r.done) return; yield r.value; }
    } finally { await it.return?.(); }
  }
  return [first, rest()];
}

/** Is this (decrypted) stored head a compressed message that `z` decodes? */
export function needsDecompression(z: CompressionSettings | undefined, head: Buffer): boolean {
  return !!z?.read && detectCompression(head) !== null;
}

/** The plaintext of a decrypted stored stream: decompressed when it is compressed and zlib is on. */
export async function* decompressedBody(z: CompressionSettings | undefined, stored: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  if (!z?.read) { yield* stored; return; }
  const [head, all] = await peek(stored, MAGIC_MAX);
  const format = detectCompression(head);
  if (!format) { yield* all; return; }
  yield* decompress(format, all, z.maxOutput);
}

/** What is stored for a new message's (LF-normalised) plaintext, before mail-crypt. */
export async function* bodyForSave(z: CompressionSettings | undefined, plain: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  if (!z) { yield* plain; return; }
  if (z.save) { yield* compress(z.save.format, z.save.level, plain); return; }
  // zlib without zlib_save: mail that already looks compressed is refused (zlib_mail_save_finish)
  const [head, all] = await peek(plain, MAGIC_MAX);
  if (detectCompression(head)) throw new MailStoreError('NOTPOSSIBLE', "Saving mails compressed by client isn't supported");
  yield* all;
}
