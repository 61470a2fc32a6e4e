/**
 * The compression formats of Dovecot 2.3's zlib plugin (lib-compression/
 * compression.c): the handler names `zlib_save` accepts, and how a stored
 * message is recognised when read — by its first bytes only, in Dovecot's
 * order (gz, bz2, xz, lz4, zstd; `deflate` has no magic, so a raw deflate
 * file is never detected, by Dovecot or here). What Sealmail itself can
 * read and write is said per format (it reads all five, as Debian's Dovecot
 * 2.3.19, which writes all but xz: "zlib_save: Support not compiled in for
 * handler: xz").
 */

export type CompressionFormat = 'gz' | 'bz2' | 'deflate' | 'xz' | 'lz4' | 'zstd';

/** Dovecot's own LZ4 framing (iostream-lz4.h): this magic, then a 4-byte big-endian max chunk size. */
export const DOVECOT_LZ4_MAGIC = Buffer.from('Dovecot-LZ4\r\x2a\x9b\xc5', 'latin1');

interface FormatInfo {
  /** The file extension Dovecot names it by in errors (`Detected .xz compression …`). */
  ext: string;
  /** Bytes needed to decide (is_compressed_* peeks this many). */
  magicLen: number;
  is(head: Buffer): boolean;
  /** Sealmail decodes it. */
  read: boolean;
  /** Sealmail writes it for zlib_save. */
  write: boolean;
  /** zlib_save_level range and default as Dovecot's handler (compression_get_*_level_*). */
  levels: { min: number; max: number; def: number } | null;
}

export const FORMATS: Record<CompressionFormat, FormatInfo> = {
  gz: { ext: '.gz', magicLen: 2, is: (h) => h[0] === 0x1f && h[1] === 0x8b, read: true, write: true, levels: { min: 1, max: 9, def: 6 } },
  bz2: {
    ext: '.bz2', magicLen: 4, read: true, write: false, levels: { min: 1, max: 9, def: 9 },
    // "BZh" and the block size digit; a data header (0x31) or, for an empty stream, the end marker (0x17) follows
    is: (h) => h[0] === 0x42 && h[1] === 0x5a && h[2] === 0x68 && h[3] >= 0x31 && h[3] <= 0x39,
  },
  deflate: { ext: '', magicLen: 0, is: () => false, read: false, write: false, levels: { min: 1, max: 9, def: 6 } },
  xz: { ext: '.xz', magicLen: 6, is: (h) => h.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), read: true, write: false, levels: null },
  lz4: { ext: '.lz4', magicLen: DOVECOT_LZ4_MAGIC.length, is: (h) => h.subarray(0, DOVECOT_LZ4_MAGIC.length).equals(DOVECOT_LZ4_MAGIC), read: true, write: true, levels: { min: 1, max: 1, def: 1 } },
  zstd: { ext: '.zstd', magicLen: 4, is: (h) => h.length >= 4 && h.readUInt32LE(0) === 0xfd2fb528, read: true, write: false, levels: { min: 1, max: 22, def: 3 } },
};

const DETECT_ORDER: CompressionFormat[] = ['gz', 'bz2', 'xz', 'lz4', 'zstd'];

/** The longest magic: this many leading bytes always suffice for detect(). */
export const MAGIC_MAX = Math.max(...DETECT_ORDER.map((f) => FORMATS[f].magicLen));

/** The format a stored (decrypted) message is in, from its first bytes; null = not compressed. */
export function detectCompression(head: Buffer): CompressionFormat | null {
  for (const f of DETECT_ORDER) if (head.length >= FORMATS[f].magicLen && FORMATS[f].is(head)) return f;
  return null;
}

export function isCompressionFormat(name: string): name is CompressionFormat {
  return Object.prototype.hasOwnProperty.call(FORMATS, name);
}
