/**
 * Boundary lines of nested multiparts (src/mailstore/mime/parts.ts), as
 * Dovecot's message-parser assigns them: to the longest open boundary the
 * line starts with. The IMAP differential (script 52-boundary-prefix.imap,
 * corpus 79/80) compares small cases with Dovecot; these are the shapes
 * made to cost the look inside a child: 200,000 lines of an inner boundary
 * that extends the outer one all belong to the inner part (up to the part
 * cap), and a 10,000-deep message still parses (each level's close line no
 * longer re-parses the levels below it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMime, MAX_TOTAL_MIME_PARTS } from '../../src/mailstore/mime/parts.js';
import { deepMessage } from '../imap/session/hostile-messages.js';

test('an inner boundary extending the outer one keeps its lines, up to the part cap', { timeout: 120_000 }, () => {
  const lines = ['Content-Type: multipart/mixed; boundary="abc"', '', '--abc', 'Content-Type: multipart/mixed; boundary="abcd"', ''];
  for (let i = 0; i < 200_000; i++) lines.push('--abcd', '', 'text');
  lines.push('--abc--', '');
  const root = parseMime(Buffer.from(lines.join('\r\n')));
  assert.equal(root.children.length, 1);
  // the message, the outer part and the inner multipart count too
  assert.equal(root.children[0].children.length, MAX_TOTAL_MIME_PARTS - 2);
});

test('closing lines of a 10,000-deep message do not make each level parse the ones below again', { timeout: 120_000 }, () => {
  let p = parseMime(Buffer.from(deepMessage(10_000), 'latin1'));
  let depth = 0;
  while (p.children.length) { p = p.children[0]; depth++; }
  assert.equal(depth, 99);
});
