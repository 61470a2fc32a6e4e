/**
 * MailStore/MaildirFolder write paths on real directories: append (LF
 * storage, S=/W=, new/ vs cur/, mtime = INTERNALDATE), flag/keyword renames,
 * expunge + maildirsize, copy by hard link, folder create/delete/rename with
 * Dovecot's on-disk outcome, and the bad-input cases: garbage uidlist,
 * keywords and subscriptions, a file vanishing mid-read, a full disk during
 * append, two processes appending at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnSync } from 'node:child_process';
import { MailStore } from '../../src/mailstore/store.js';
import { MailStoreError } from '../../src/mailstore/errors.js';
import type { MessageCodec } from '../../src/crypt/codec.js';
import { distRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { materialiseCase } from './maildir-fixture.js';

const run = promisify(execFile);
const MSG = Buffer.from('From: a@example.org\r\nSubject: hi\r\n\r\nline1\r\nline2\r\n');

async function freshStore(t: Parameters<typeof tempDir>[0], loc = 'maildir:~/Maildir') {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: loc, home });
  await store.ensureRoot();
  return { home, store };
}

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

test('append stores LF text with correct S=/W=, mtime = INTERNALDATE, new/ without flags, cur/:2, with', async (t) => {
  const { home, store } = await freshStore(t);
  const inbox = await store.open('INBOX');
  const date = new Date('2024-01-02T11:34:56Z');
  const u1 = await inbox.append(MSG, { internalDate: date });
  const u2 = await inbox.append(MSG, { flags: ['\\Seen', '\\Flagged'], keywords: ['$Forwarded', 'Work'] });
  assert.deepEqual([u1, u2], [1, 2]);
  const newFiles = readdirSync(join(home, 'Maildir', 'new'));
  const curFiles = readdirSync(join(home, 'Maildir', 'cur'));
  assert.equal(newFiles.length, 1); assert.equal(curFiles.length, 1);
  const stored = readFileSync(join(home, 'Maildir', 'new', newFiles[0]));
  assert.equal(stored.toString(), MSG.toString().replace(/\r\n/g, '\n'));
  assert.match(newFiles[0], new RegExp(`^\\d+\\.M\\d+P${process.pid}\\.[^,]+,S=${stored.length},W=${MSG.length}$`));
  assert.match(curFiles[0], /,S=\d+,W=\d+:2,FSab$/);
  assert.equal(statSync(join(home, 'Maildir', 'new', newFiles[0])).mtimeMs, date.getTime());
  assert.equal(readFileSync(join(home, 'Maildir', 'dovecot-keywords'), 'utf8'), '0 $Forwarded\n1 Work\n');
  const ul = readFileSync(join(home, 'Maildir', 'dovecot-uidlist'), 'utf8').split('\n');
  assert.match(ul[0], /^3 V\d+ N1 G[0-9a-f]{32}$/);
  assert.equal(ul[1], `1 :${newFiles[0]}`);
  assert.equal((await readAll(inbox.read(inbox.message(1)!))).toString(), MSG.toString().replace(/\r\n/g, '\n'));
  assert.equal(await inbox.virtualSize(inbox.message(1)!), MSG.length);
  assert.equal(existsSync(join(home, 'Maildir', 'dovecot-uidlist.lock')), false);
  assert.deepEqual(readdirSync(join(home, 'Maildir', 'tmp')), []);
});

test('flags and keywords change by rename keeping the UID; expunge unlinks and updates maildirsize', async (t) => {
  const { home, store } = await freshStore(t);
  writeFileSync(join(home, 'Maildir', 'maildirsize'), '1000000S\n0 0\n');
  const inbox = await store.open('INBOX');
  await inbox.append(MSG); await inbox.append(MSG);
  const m = inbox.message(1)!;
  await inbox.setFlags(m, ['\\Answered', '\\Seen'], ['NonJunk']);
  await inbox.sync();
  assert.deepEqual([...inbox.message(1)!.flags].sort(), ['\\Answered', '\\Seen']);
  assert.deepEqual(inbox.message(1)!.keywords, ['NonJunk']);
  assert.equal(inbox.message(1)!.sub, 'cur');
  assert.match(inbox.message(1)!.file, /:2,RSa$/);
  const size = statSync(inbox.path(inbox.message(2)!)).size;
  assert.deepEqual(await inbox.expunge([inbox.message(2)!]), [2]);
  await inbox.sync();
  assert.deepEqual(inbox.messages.map((x) => x.uid), [1]);
  assert.equal(inbox.uidNext, 3);
  const lines = readFileSync(join(home, 'Maildir', 'maildirsize'), 'utf8').trim().split('\n');
  assert.equal(lines.at(-1), `-${size} -1`);
  assert.deepEqual(await store.quota(), { limitBytes: 1000000, bytes: size, count: 1 });
});

test('copy hard-links into the target folder with a fresh base name and keeps flags', async (t) => {
  const { home, store } = await freshStore(t);
  await store.create('Archive');
  const inbox = await store.open('INBOX');
  await inbox.append(MSG, { flags: ['\\Seen'] });
  const arch = await store.open('Archive');
  const uid = await arch.copyFrom(inbox, inbox.message(1)!);
  assert.equal(uid, 1);
  const [a] = readdirSync(join(home, 'Maildir', '.Archive', 'cur'));
  assert.match(a, /:2,S$/);
  assert.equal(statSync(join(home, 'Maildir', '.Archive', 'cur', a)).ino, statSync(inbox.path(inbox.message(1)!)).ino);
});

test('create/rename/delete: Maildir++ outcome like Dovecot (children move, subscriptions untouched, children survive delete)', async (t) => {
  const { home, store } = await freshStore(t);
  await store.create('Old');
  await store.create('Old.Sub');
  await store.create('Entw&APw-rfe');
  await assert.rejects(store.create('Old'), (e: unknown) => e instanceof MailStoreError && e.code === 'ALREADYEXISTS');
  await assert.rejects(store.create('a/b'), (e: unknown) => e instanceof MailStoreError && e.code === 'INVALIDNAME');
  await assert.rejects(store.create('Entwürfe'), (e: unknown) => e instanceof MailStoreError && e.code === 'BADENCODING');
  const root = join(home, 'Maildir');
  assert.ok(existsSync(join(root, '.Old', 'maildirfolder')));
  const uvOld = readFileSync(join(root, '.Old', 'dovecot-uidlist'), 'utf8').split('\n')[0];
  await store.subscribe('Old.Sub');
  await store.rename('Old', 'New');
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.')).sort(), ['.Entw&APw-rfe', '.New', '.New.Sub']);
  assert.equal(readFileSync(join(root, '.New', 'dovecot-uidlist'), 'utf8').split('\n')[0], uvOld);
  assert.deepEqual(await store.subscriptions(), ['Old.Sub']);
  await assert.rejects(store.rename('INBOX', 'X'), /Renaming INBOX isn't supported/);
  await store.delete('New');
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.')).sort(), ['.Entw&APw-rfe', '.New.Sub']);
  const list = await store.list();
  assert.deepEqual(list.find((e) => e.name === 'New')?.flags, ['\\NonExistent', '\\HasChildren']);
  assert.deepEqual(list.find((e) => e.name === 'Old.Sub'), undefined);
  // UIDVALIDITY values come from the shared allocator, increasing
  const uvs = ['Entw&APw-rfe', 'New.Sub'].map((n) => Number(/V(\d+)/.exec(readFileSync(join(store.dirOf(n), 'dovecot-uidlist'), 'utf8'))![1]));
  assert.ok(uvs[1] < uvs[0]);
});

test('fs layout: create makes nested dirs without maildirfolder; cur/new/tmp names refused', async (t) => {
  // no namespace configured: Dovecot's default one, with LAYOUT=fs's own separator "/"
  const { home, store } = await freshStore(t, 'maildir:~/Maildir:LAYOUT=fs');
  await store.create('Archive/2024');
  assert.ok(existsSync(join(home, 'Maildir', 'Archive', '2024', 'cur')));
  assert.ok(!existsSync(join(home, 'Maildir', 'Archive', '2024', 'maildirfolder')));
  assert.deepEqual((await store.list()).find((e) => e.name === 'Archive')?.flags, ['\\Noselect', '\\HasChildren']);
  await assert.rejects(store.create('x/cur'), (e: unknown) => e instanceof MailStoreError && e.code === 'INVALIDNAME');
});

test('garbage dovecot-uidlist is repaired keeping every UID that can be kept (Dovecot would renumber all)', async (t) => {
  const home = materialiseCase('maildirpp-alice', tempDir(t));
  const p = join(home, 'Maildir', 'dovecot-uidlist');
  const lines = readFileSync(p, 'utf8').split('\n');
  // corrupt one record and add junk and a torn tail
  lines.splice(2, 1, '3 :1795394566.M433034P502.vm,S=155,W=162', '@@@ garbage @@@');
  writeFileSync(p, lines.join('\n') + '99 :half-writ');
  const warnings: string[] = [];
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home, warn: (m) => warnings.push(m) });
  const f = await store.open('INBOX');
  await f.sync();
  assert.deepEqual(f.messages.map((m) => m.uid), [1, 3, 4, 6, 7]);
  assert.ok(f.uidNext >= 100, 'UID 99 from the torn line is never reused');
  assert.ok(warnings.some((w) => /repaired, keeping/.test(w)));
  const again = readFileSync(p, 'utf8');
  assert.doesNotMatch(again, /garbage|half-writ/);
  assert.match(again.split('\n')[0], /^3 V1795394535 N\d+ G/);
});

test('garbage dovecot-keywords and subscriptions do not stop the mailbox from opening', async (t) => {
  const home = materialiseCase('maildirpp-alice', tempDir(t));
  writeFileSync(join(home, 'Maildir', 'dovecot-keywords'), '\x00\x01binary junk\n0 $Forwarded\nnot a line\n');
  writeFileSync(join(home, 'Maildir', 'subscriptions'), 'V\t2\n\nINBOX\n\t\t\n\x00zz\n');
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  const f = await store.open('INBOX');
  await f.sync();
  assert.equal(f.messages.length, 5);
  assert.deepEqual(f.message(3)!.keywords, ['$Forwarded']);
  assert.deepEqual(f.message(1)!.keywords, ['unknown-4']);
  assert.ok((await store.subscriptions()).includes('INBOX'));
});

test('a message file that vanishes before/while reading gives EXPUNGED; a foreign flag rename is followed', async (t) => {
  const { home, store } = await freshStore(t);
  const inbox = await store.open('INBOX');
  await inbox.append(MSG, { flags: ['\\Seen'] });
  await inbox.append(MSG);
  const m = inbox.message(1)!;
  const { renameSync } = await import('node:fs');
  renameSync(inbox.path(m), inbox.path(m).replace(/:2,S$/, ':2,FS'));
  assert.equal((await readAll(inbox.read(m))).length, MSG.length - 5);
  assert.ok(m.flags.has('\\Flagged'));
  const m2 = inbox.message(2)!;
  unlinkSync(inbox.path(m2));
  await assert.rejects(readAll(inbox.read(m2)), (e: unknown) => e instanceof MailStoreError && e.code === 'EXPUNGED');
  await assert.rejects(inbox.stat(m2), (e: unknown) => e instanceof MailStoreError && e.code === 'EXPUNGED');
});

test('full disk during append: clear NOSPACE error, no half message visible, nothing renumbered', async (t) => {
  // a subdirectory: the tmpfs must be unmounted before tempDir's clean-up removes the parent
  const parent = tempDir(null);
  const home = join(parent, 'home');
  mkdirSync(home);
  let realDisk = false;
  if (process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', home]).status === 0) realDisk = true;
  t.after(() => {
    if (realDisk) spawnSync('umount', [home]);
    rmSync(parent, { recursive: true, force: true });
  });
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const inbox = await store.open('INBOX');
  await inbox.append(MSG);
  const big = Buffer.alloc(200 * 1024, 'x\n');
  let target = inbox;
  if (!realDisk) {
    t.diagnostic('tmpfs not mountable (not root): simulating ENOSPC through the codec');
    const failing: MessageCodec = {
      isEncrypted: () => false,
      async *encrypt(_mb, src) { let n = 0; for await (const c of src) { n += c.length; if (n > 16384) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }); yield c; } },
      decrypt: (_mb, s) => s,
    };
    target = await new MailStore({ mailLocation: 'maildir:~/Maildir', home, codec: failing }).open('INBOX');
  }
  await assert.rejects(target.append(big), (e: unknown) => e instanceof MailStoreError && e.code === 'NOSPACE' && /INBOX/.test(e.message));
  assert.deepEqual(readdirSync(join(home, 'Maildir', 'tmp')), [], 'tmp/ cleaned');
  await inbox.sync();
  assert.deepEqual(inbox.messages.map((m) => m.uid), [1]);
  assert.equal(readdirSync(join(home, 'Maildir', 'new')).length + readdirSync(join(home, 'Maildir', 'cur')).length, 1);
  assert.equal(existsSync(join(home, 'Maildir', 'dovecot-uidlist.lock')), false);
  // after the failure the next append still works and gets UID 2
  assert.equal(await inbox.append(MSG), 2);
});

test('two processes appending at once never share a UID and lose nothing', async (t) => {
  const { home, store } = await freshStore(t);
  await store.open('INBOX').then((f) => f.sync());
  const worker = join(distRoot, 'test', 'mailstore', 'append-worker.js');
  const n = 25;
  const [a, b] = await Promise.all(['A', 'B'].map((tag) => run(process.execPath, [worker, home, 'INBOX', String(n), tag])));
  const ua: number[] = JSON.parse(a.stdout); const ub: number[] = JSON.parse(b.stdout);
  const all = [...ua, ...ub].sort((x, y) => x - y);
  assert.deepEqual(all, Array.from({ length: 2 * n }, (_, i) => i + 1));
  const inbox = await store.open('INBOX');
  await inbox.sync();
  assert.equal(inbox.messages.length, 2 * n);
  const ul = readFileSync(join(home, 'Maildir', 'dovecot-uidlist'), 'utf8').trim().split('\n');
  assert.equal(ul.length, 2 * n + 1);
});
