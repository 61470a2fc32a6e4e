/**
 * Unit behaviour of the Maildir control files against the formats in
 * docs/maildir-format.md: mUTF-7, file names, uidlist parsing/repair,
 * keywords, subscriptions, UIDVALIDITY allocator, mail_location parsing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mutf7ToUtf8, utf8ToMutf7 } from '../../src/mailstore/api/mailbox-utf7.js';
import { compareBaseNames, infoSuffix, parseName } from '../../src/mailstore/maildir/filename.js';
import { nextUid, parseUidlist, serializeUidlist } from '../../src/mailstore/maildir/uidlist.js';
import { KeywordMap } from '../../src/mailstore/maildir/keywords.js';
import { parseSubscriptions, serializeSubscriptions } from '../../src/mailstore/maildir/subscriptions.js';
import { nextUidValidity } from '../../src/mailstore/maildir/uidvalidity.js';
import { parseMailLocation } from '../../src/mailstore/maildir/location.js';
import { acquireDotlock } from '../../src/mailstore/maildir/dotlock.js';
import { MailStoreError } from '../../src/mailstore/errors.js';
import { tempDir } from '../helpers/tmp.js';

test('modified UTF-7 round trips and rejects invalid names', () => {
  assert.equal(utf8ToMutf7('Entwürfe'), 'Entw&APw-rfe');
  assert.equal(utf8ToMutf7('Kunde Ä'), 'Kunde &AMQ-');
  assert.equal(utf8ToMutf7('a&b'), 'a&-b');
  assert.equal(utf8ToMutf7('日本語'), '&ZeVnLIqe-');
  assert.equal(utf8ToMutf7('😀'), '&2D3eAA-');
  for (const s of ['Entwürfe', 'a&b', '日本語', '😀 x', '~peter/mail/台北']) assert.equal(mutf7ToUtf8(utf8ToMutf7(s)), s);
  for (const bad of ['a&b', '&Jjo', '&AGE-', 'Entwürfe', '&2D3-']) assert.throws(() => mutf7ToUtf8(bad), /not valid mUTF-7/, bad);
});

test('file names: base, info, flag and keyword letters in Dovecot order', () => {
  const p = parseName('1795394566.M433034P502.vm,S=155,W=162:2,FRSa');
  assert.equal(p.base, '1795394566.M433034P502.vm,S=155,W=162');
  assert.deepEqual([...p.flags].sort(), ['\\Answered', '\\Flagged', '\\Seen']);
  assert.deepEqual(p.keywordIdx, [0]);
  assert.equal(p.size, 155); assert.equal(p.vsize, 162);
  assert.equal(infoSuffix(['\\Seen', '\\Draft', '\\Flagged'], [3, 0], 'P'), ':2,DFPSad');
  assert.equal(infoSuffix([], []), ':2,');
  const q = parseName('x:2,SP,extra');
  assert.equal(q.otherLetters, 'P'); assert.equal(q.extra, ',extra');
  assert.equal(parseName('x:1,S').flags.size, 0);
  const names = ['1800000000.M1P997.otherhost', '1700000001.renamed.otherhost', '1600000000.P998Q1.otherhost', '1700000000.P999Q1.otherhost', '1650000000.P996.otherhost', '1700000000.M20P1.h', '1700000000.M3P1.h'];
  assert.deepEqual([...names].sort(compareBaseNames), ['1600000000.P998Q1.otherhost', '1650000000.P996.otherhost', '1700000000.M3P1.h', '1700000000.M20P1.h', '1700000000.P999Q1.otherhost', '1700000001.renamed.otherhost', '1800000000.M1P997.otherhost']);
});

test('uidlist: real next UID is max(N, last+1); v1 is read; unknown fields kept', () => {
  const u = parseUidlist('3 V123 N5 Gef8bc920e78b036b346d000083ecc375 Pxyz\n1 :a\n3 GAB W10 :b\n9 :c\n')!;
  assert.equal(nextUid(u), 10);
  assert.deepEqual(u.problems, []);
  assert.equal(u.records[1].ext.get('W'), '10');
  assert.equal(serializeUidlist(u), '3 V123 N10 Gef8bc920e78b036b346d000083ecc375 Pxyz\n1 :a\n3 GAB W10 :b\n9 :c\n');
  const u2 = parseUidlist('3 V1 N20 G00000000000000000000000000000000\n1 :a\n')!;
  assert.equal(nextUid(u2), 20);
  const v1 = parseUidlist('1 777 4\n1 old.file:2,S\n2 other\n')!;
  assert.equal(v1.uidValidity, 777); assert.deepEqual(v1.records.map((r) => r.base), ['old.file', 'other']);
  assert.equal(parseUidlist(''), null);
  assert.equal(parseUidlist('garbage\n1 :a\n'), null);
});

test('uidlist: malformed lines are dropped, every other UID is kept, and dropped UIDs are never reused', () => {
  const text = '3 V5 N3 Gef8bc920e78b036b346d000083ecc375\n1 :a\n2 :b\nxx garbage\n7 :c\n5 :out-of-order\n8 :with/slash\n9 :a\n10 :d\n11 :torn';
  const u = parseUidlist(text)!;
  assert.deepEqual(u.records.map((r) => [r.uid, r.base]), [[1, 'a'], [2, 'b'], [7, 'c'], [10, 'd']]);
  assert.equal(u.problems.length, 5);
  assert.ok(nextUid(u) >= 11, 'UID 11 from the torn line may have been seen by a client');
});

test('keywords: garbage lines ignored, unknown letters named like Dovecot, 26 max', () => {
  const k = KeywordMap.parse('0 $Forwarded\nnonsense\n99 Big\n1 work\n2 Work\n25 unknown-3\n');
  assert.equal(k.names[0], '$Forwarded'); assert.equal(k.names[1], 'work'); assert.equal(k.names[2], undefined);
  assert.equal(k.problems.length, 3);
  assert.equal(k.indexOf('WORK'), 1);
  assert.equal(k.nameFor(3), 'unknown-3?');
  assert.equal(k.nameFor(4), 'unknown-4');
  for (let i = 0; i < 21; i++) k.allocate(`kw${i}`);
  assert.equal(k.allocate('one-too-many'), -1);
});

test('subscriptions: v2 TAB format with escapes, v1 stays v1, garbage tolerated', () => {
  const s = parseSubscriptions('V\t2\n\nINBOX\nArchive\t2024\nProjects\tKunde &AMQ-\na\x01tb\n\n\tbroken\n', '.');
  assert.deepEqual(s.names, [['INBOX'], ['Archive', '2024'], ['Projects', 'Kunde &AMQ-'], ['a\tb']]);
  assert.equal(serializeSubscriptions(s, '.'), 'V\t2\n\nINBOX\nArchive\t2024\nProjects\tKunde &AMQ-\na\x01tb\n');
  const v1 = parseSubscriptions('INBOX\nA.B\n', '.');
  assert.equal(v1.version, 1); assert.deepEqual(v1.names, [['INBOX'], ['A', 'B']]);
  assert.equal(serializeSubscriptions(v1, '.'), 'INBOX\nA.B\n');
});

test('UIDVALIDITY allocator: token rename, hex file, concurrent callers get distinct values', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'dovecot-uidvalidity'), '6b038bf3');
  writeFileSync(join(dir, 'dovecot-uidvalidity.6b038bf3'), '', { mode: 0o444 });
  assert.equal(await nextUidValidity(dir), 0x6b038bf4);
  assert.equal(readFileSync(join(dir, 'dovecot-uidvalidity'), 'utf8'), '6b038bf4');
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('dovecot-uidvalidity.')), ['dovecot-uidvalidity.6b038bf4']);
  const vals = await Promise.all([1, 2, 3, 4, 5].map(() => nextUidValidity(dir)));
  assert.equal(new Set(vals).size, 5);
  const fresh = tempDir(t);
  const v = await nextUidValidity(fresh);
  assert.ok(Math.abs(v - Date.now() / 1000) < 5);
});

test('mail_location parsing', () => {
  assert.deepEqual(parseMailLocation('maildir:~/Maildir', '/h'), { root: '/h/Maildir', layout: 'maildir++', utf8: false, inbox: '/h/Maildir', storageSep: '.', sep: '.' });
  const l = parseMailLocation('maildir:~/Maildir:LAYOUT=fs:UTF-8:INDEX=/var/idx/%u:CONTROL=~/ctl:INBOX=~/inbox', '/h');
  assert.equal(l.layout, 'fs'); assert.equal(l.utf8, true); assert.equal(l.index, '/var/idx/%u'); assert.equal(l.control, '/h/ctl'); assert.equal(l.inbox, '/h/inbox');
  assert.equal(parseMailLocation('maildir:/a::b', undefined).root, '/a:b');
  assert.throws(() => parseMailLocation('mbox:~/mail', '/h'), /only the maildir driver/);
  assert.throws(() => parseMailLocation('maildir:~/Maildir', undefined), /no home/);
  assert.throws(() => parseMailLocation('maildir:~/M:LAYOUT=index', '/h'), /LAYOUT=index/);
});

test('dotlock: O_EXCL, pid:host content, stale lock of a dead pid is overridden, live one times out', async (t) => {
  const dir = tempDir(t);
  const p = join(dir, 'dovecot-uidlist');
  const l = await acquireDotlock(p);
  assert.match(readFileSync(p + '.lock', 'utf8'), new RegExp(`^${process.pid}:`));
  await assert.rejects(acquireDotlock(p, { timeoutMs: 200 }), (e: unknown) => e instanceof MailStoreError && e.code === 'LOCKTIMEOUT' && /held by/.test(e.message));
  await l.release();
  assert.equal(existsSync(p + '.lock'), false);
  writeFileSync(p + '.lock', `999999999:${(await import('node:os')).hostname()}`);
  const l2 = await acquireDotlock(p, { timeoutMs: 200 });
  await l2.release();
});
