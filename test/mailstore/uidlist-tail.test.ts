/**
 * The delivery path's in-memory uidlist (src/mailstore/maildir/uidlist-tail.ts):
 * appends by another writer are read incrementally, a rewrite renamed in is
 * noticed, and anything irregular in the appended part (a torn line, a UID
 * going backwards, a file listed twice) falls back to the full read, whose
 * problems make the caller run its full sync.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readUidlistTail } from '../../src/mailstore/maildir/uidlist-tail.js';

const HEADER = '3 V1700000000 N4 G0123456789abcdef0123456789abcdef\n';
const rec = (uid: number, base: string) => `${uid} :${base}\n`;

test('uidlist tail: appends, rewrites and damage', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sealmail-tail-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'dovecot-uidlist');

  assert.equal(await readUidlistTail(path), null, 'missing file');

  writeFileSync(path, HEADER + rec(1, 'a') + rec(2, 'b') + rec(3, 'c'));
  let v = (await readUidlistTail(path))!;
  assert.equal(v.uidValidity, 1700000000);
  assert.equal(v.nextUid, 4);
  assert.equal(v.uidOf('b'), 2);

  // another process (Dovecot, an IMAP worker) appends under the lock
  appendFileSync(path, rec(4, 'd') + rec(7, 'e'));
  v = (await readUidlistTail(path))!;
  assert.equal(v.uidOf('e'), 7);
  assert.equal(v.nextUid, 8);
  assert.equal(v.uidOf('a'), 1, 'earlier records kept');

  // a rewrite (expunges compacted away) is a new file renamed in
  writeFileSync(join(dir, 'tmp'), '3 V1700000000 N9 G0123456789abcdef0123456789abcdef\n' + rec(2, 'b') + rec(7, 'e'));
  renameSync(join(dir, 'tmp'), path);
  v = (await readUidlistTail(path))!;
  assert.equal(v.uidOf('a'), undefined, 'the rewrite dropped a');
  assert.equal(v.nextUid, 9, 'N from the new header');

  // a UID going backwards in the appended part: the full read reports it, the caller syncs in full
  appendFileSync(path, rec(5, 'f'));
  assert.equal(await readUidlistTail(path), null);

  // a torn append (a writer killed mid-line) likewise
  writeFileSync(path, HEADER + rec(1, 'a'));
  assert.ok(await readUidlistTail(path));
  appendFileSync(path, '2 :g');
  assert.equal(await readUidlistTail(path), null);

  // the same file listed twice
  writeFileSync(path, HEADER + rec(1, 'a'));
  assert.ok(await readUidlistTail(path));
  appendFileSync(path, rec(2, 'a'));
  assert.equal(await readUidlistTail(path), null);
});
