/**
 * Decompression throughput of the zlib plugin's formats on the large
 * fixture Dovecot wrote (test/fixtures/dovecot-zlib/large.*, 141 300 bytes
 * of plaintext), and the longest time one decoding held the event loop
 * between two yields (the unit-by-unit goal: one lz4 chunk / zstd block /
 * bzip2 block / LZMA2 chunk at a time). Dovecot's column: `doveadm fetch
 * text` is a whole process per message, not comparable; not measured.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from '../test/helpers/paths.js';
import { decompress } from '../src/mailstore/compression/streams.js';
import type { CompressionFormat } from '../src/mailstore/compression/formats.js';
import { medianMs, type Bench } from './harness.js';

const bench: Bench = async () => {
  const rows = [];
  for (const f of ['gz', 'bz2', 'lz4', 'zstd', 'xz'] as CompressionFormat[]) {
    const stored = readFileSync(join(fixturesDir, 'dovecot-zlib', `large.${f}`));
    let size = 0;
    let longest = 0;
    const once = async () => {
      size = 0;
      let last = process.hrtime.bigint();
      for await (const c of decompress(f, (async function* () { yield stored; })(), 1 << 30)) {
        const now = process.hrtime.bigint();
        longest = Math.max(longest, Number(now - last) / 1e6);
        size += c.length;
        await new Promise((r) => setImmediate(r));
        last = process.hrtime.bigint();
      }
    };
    await once();
    longest = 0;
    const ms = await medianMs(9, once);
    rows.push({ name: `zlib plugin: decompress a ${size}-byte message (${f})`, sealmail: `${(size / 1e6 / (ms / 1000)).toFixed(1)} MB/s (${ms.toFixed(1)} ms; longest hold of the event loop ${longest.toFixed(1)} ms)`, dovecot: 'not measured' });
  }
  return rows;
};
export default bench;
