/**
 * Reads Dovecot 2.3's HIGHESTMODSEQ of a mailbox from its head transaction
 * log `dovecot.index.log` (lib-index mail-transaction-log format, spec §10.2)
 * so Sealmail can continue above it and CONDSTORE/QRESYNC clients never see
 * the modseq go down on take-over. Read-only: Dovecot's files are never
 * written or deleted.
 */
import { promises as fsp } from 'node:fs';

const FLAGS_MASK = 0x3f;

/** Decodes Dovecot's 4×7-bit "offset" encoding of a record size. */
function off2u32(b: Buffer, pos: number): number {
  const v = b.readUInt32BE(pos);
  if ((v & 0x80808080) >>> 0 !== 0x80808080) return 0;
  return ((v & 0x7f) | (((v & 0x7f00) >>> 8) << 7) | (((v & 0x7f0000) >>> 16) << 14) | (((v & 0x7f000000) >>> 24) << 21)) * 4;
}

export interface LogModseq { version: string; initialModseq: bigint; records: number; highestModseq: bigint }

export function highestModseqFromLog(d: Buffer): LogModseq | null {
  if (d.length < 8) return null;
  const major = d[0]; const minor = d[1]; const hdrSize = d.readUInt16LE(2);
  if (major !== 1 || hdrSize < 24 || hdrSize > d.length) return null;
  const initial = hdrSize >= 32 ? d.readBigUInt64LE(24) : 0n;
  let cur = initial; let pos = hdrSize; let n = 0;
  const hideInternal = minor >= 3;
  while (pos + 8 <= d.length) {
    const size = off2u32(d, pos);
    const typ = d.readUInt32LE(pos + 4);
    if (size < 8 || pos + size > d.length) break;
    const t = typ & 0x0fffffff;
    const data = d.subarray(pos + 8, pos + size);
    n++;
    if (cur === 0n) {
      if (t === 0x40 && data.length >= 20) {
        const nameSize = data.readUInt16LE(18);
        if (data.subarray(20, 20 + nameSize).toString('latin1') === 'modseq') cur = 1n;
      }
    } else if (t === (0x1 | 0xcd90) || t === (0x2000 | 0xcd90)) {
      if (typ & 0x10000000) cur++;
    } else if (t === 0x2 || t === 0x400 || t === 0x800 || t === 0x100000) {
      cur++;
    } else if (t === 0x4) {
      let touches = !hideInternal;
      for (let i = 0; i + 12 <= data.length && !touches; i += 12) {
        if (((data[i + 8] | data[i + 9]) & FLAGS_MASK) || data[i + 10]) touches = true;
      }
      if (touches) cur++;
    } else if (t === 0x8000) {
      for (let i = 0; i + 12 <= data.length; i += 12) {
        const m = (BigInt(data.readUInt32LE(i + 8)) << 32n) | BigInt(data.readUInt32LE(i + 4));
        if (m > cur) cur = m;
      }
    }
    pos += size;
  }
  return { version: `${major}.${minor}`, initialModseq: initial, records: n, highestModseq: cur };
}

/** HIGHESTMODSEQ of the mailbox whose index dir holds `dovecot.index.log`, or null when absent/unreadable. */
export async function readDovecotHighestModseq(indexDir: string): Promise<bigint | null> {
  let d: Buffer;
  try { d = await fsp.readFile(`${indexDir}/dovecot.index.log`); } catch { return null; }
  return highestModseqFromLog(d)?.highestModseq ?? null;
}
