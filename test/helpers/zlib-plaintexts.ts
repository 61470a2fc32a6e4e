/**
 * Plaintexts for the zlib plugin tests (scripts/make-zlib-fixtures.ts and
 * the interop test): a small message, and a ~140 KB one of deterministic
 * pseudo-random words and base64 lines, big enough for several lz4 chunks,
 * bzip2 blocks at level 1 and zstd blocks, and varied enough that zstd uses
 * Huffman literals and FSE-coded sequences.
 */
export function zlibPlaintexts(): Record<string, string> {
  const words = ['mail', 'Dovecot', 'hello', 'world', 'the', 'quick', 'brown', 'fox', 'Sealmail', 'compressed', 'Maildir', 'über', 'the', 'and', 'of', 'IMAP'];
  let seed = 17;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) >>> 12);
  let body = '';
  while (body.length < 140_000) {
    if (rnd() % 40 === 0) {
      let b = '';
      for (let i = 0; i < 76; i++) b += 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'[rnd() % 64];
      body += b + '\n';
    } else body += words[rnd() % words.length] + (rnd() % 9 === 0 ? '\n' : ' ');
  }
  return {
    small: 'From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: compressed by Dovecot\nMessage-ID: <small@example.org>\n\nHello Bob,\nthis message is stored compressed.\n',
    large: `From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: a large compressed message\nMessage-ID: <large@example.org>\nContent-Type: text/plain; charset=utf-8\n\n${body}\n`,
  };
}
