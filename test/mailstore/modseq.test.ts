/**
 * MODSEQs of a Maildir folder (sealmail.modseq): persisted across restarts,
 * sealed on disk, HIGHESTMODSEQ only grows — also for changes another
 * process or Dovecot made (found by a rescan) — expunges remembered for
 * VANISHED, and a lost file handled safely (UIDVALIDITY kept, modseq jumps).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, promises as fsp, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { distRoot } from '../helpers/paths.js';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { IndexCipher } from '../../src/crypt/codec.js';
import { MailStore } from '../../src/mailstore/store.js';
import { ModseqState, MODSEQ_FILE } from '../../src/mailstore/maildir/modseq.js';
import { tempDir } from '../helpers/tmp.js';
import { maildirFixtures, materialiseCase } from './maildir-fixture.js';

const key = randomBytes(32);
const testCipher: IndexCipher = {
  seal(p) { const iv = randomBytes(12); const c = createCipheriv('aes-256-gcm', key, iv); const b = Buffer.concat([c.update(p), c.final()]); return Buffer.concat([iv, c.getAuthTag(), b]); },
  open(s) { const d = createDecipheriv('aes-256-gcm', key, s.subarray(0, 12)); d.setAuthTag(s.subarray(12, 28)); return Buffer.concat([d.update(s.subarray(28)), d.final()]); },
};

async function openInbox(home: string, cipher?: IndexCipher) {
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home, cipher });
  const f = await store.open('INBOX');
  await f.sync();
  return f;
}

test('modseq: new folder starts at 1, every change grows it, persisted across a restart', async (t) => {
  ModseqState.forgetAll();
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const f = await store.open('INBOX');
  await f.sync();
  assert.equal(f.highestModseq, 1, 'an empty never-used folder starts as Dovecot does');
  await f.append(Buffer.from('Subject: a\n\nx\n'));
  await f.append(Buffer.from('Subject: b\n\ny\n'));
  const [m1, m2] = f.messages;
  assert.ok(m1.modseq > 1 && m2.modseq > m1.modseq, 'each APPEND is its own transaction');
  const before = f.highestModseq;
  await f.setFlags(m1, ['\\Seen'], []);
  assert.equal(f.message(1)!.modseq, before + 1);
  assert.equal(f.highestModseq, before + 1);
  // restart: same modseqs from disk
  ModseqState.forgetAll();
  const g = await openInbox(home);
  assert.equal(g.highestModseq, before + 1);
  assert.deepEqual(g.messages.map((m) => m.modseq), [before + 1, m2.modseq]);
  // a flag change by someone else (Dovecot renames the file): a new modseq on the next rescan
  const cur = join(home, 'Maildir', 'cur');
  const m2p = join(home, 'Maildir', g.message(2)!.sub, g.message(2)!.file);
  renameSync(m2p, join(cur, `${g.message(2)!.base}:2,F`));
  await new Promise((r) => setTimeout(r, 20));
  ModseqState.forgetAll();
  const h = await openInbox(home);
  assert.equal(h.message(2)!.modseq, before + 2, 'a foreign flag change seen by a rescan moves the modseq on');
  assert.equal(h.message(1)!.modseq, before + 1, 'an unchanged message keeps its modseq');
  // an expunge by someone else: remembered for VANISHED
  unlinkSync(join(cur, `${h.message(2)!.base}:2,F`));
  ModseqState.forgetAll();
  const i = await openInbox(home);
  assert.deepEqual(i.vanishedSince(before + 2), [2]);
  assert.deepEqual(i.vanishedSince(i.highestModseq), []);
  assert.equal(i.highestModseq, before + 3);
  // our own expunge too
  await i.expunge([i.message(1)!]);
  assert.deepEqual(i.vanishedSince(before + 2), [1, 2]);
  assert.equal(i.highestModseq, before + 4);
});

test('modseq: sealed on disk, a lost or damaged file makes it jump (UIDVALIDITY stays), above Dovecot on take-over', async (t) => {
  ModseqState.forgetAll();
  const home = materialiseCase('maildirpp-alice', tempDir(t));
  const dir = join(home, 'Maildir');
  copyFileSync(join(maildirFixtures, 'index-logs', 'alice-INBOX-highestmodseq19.dovecot.index.log'), join(dir, 'dovecot.index.log'));
  const t0 = Date.now();
  const f = await openInbox(home, testCipher);
  const uidv = f.uidValidity;
  assert.ok(f.highestModseq > 19 && f.highestModseq > t0, 'taken over: above Dovecot and above the clock');
  assert.ok(f.messages.every((m) => m.modseq === f.highestModseq), 'nothing known: every message has the new modseq');
  await f.setFlags(f.messages[0], ['\\Seen', '\\Flagged'], []);
  const disk = readFileSync(join(dir, MODSEQ_FILE));
  assert.ok(!disk.includes(`m ${f.messages[0].uid} `) && !disk.includes(':2,') && !disk.includes('FS'), 'nothing in plaintext');
  const high = f.highestModseq;
  // a torn tail (crash mid-append): the file is not trusted
  writeFileSync(join(dir, MODSEQ_FILE), disk.subarray(0, disk.length - 3));
  ModseqState.forgetAll();
  const g = await openInbox(home, testCipher);
  assert.equal(g.uidValidity, uidv);
  assert.ok(g.highestModseq > high, 'lost: the modseq jumps above anything handed out');
  assert.equal(g.vanishedSince(high), null, 'expunges before the loss are unknown');
  // garbage and a leftover temp file
  writeFileSync(join(dir, MODSEQ_FILE), 'SMQ1 1\ngarbage');
  writeFileSync(join(dir, `${MODSEQ_FILE}.tmp.1`), 'half');
  ModseqState.forgetAll();
  const h = await openInbox(home, testCipher);
  assert.ok(h.highestModseq >= g.highestModseq);
  // a handle that cannot seal (delivery without the user's key) leaves modseqs alone
  ModseqState.forgetAll();
  const no: IndexCipher = { seal() { throw new Error('no key'); }, open() { throw new Error('no key'); } };
  const d = await openInbox(home, no);
  assert.equal(d.messages[0].modseq, 0);
  assert.ok(readFileSync(join(dir, MODSEQ_FILE)).length > 20);
});

test('modseq: two processes share one counter (IMAP workers, sealadm): same modseq for a message everywhere, never reused', async (t) => {
  ModseqState.forgetAll();
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const f = await store.open('INBOX');
  for (const s of ['a', 'b', 'c']) await f.append(Buffer.from(`Subject: ${s}\n\nx\n`));
  const h0 = f.highestModseq;
  // another process changes message 1 (it reads our file first, takes the next modseq, appends)
  const r = spawnSync(process.execPath, [join(distRoot, 'test', 'mailstore', 'store-worker.js'), JSON.stringify({ home, location: 'maildir:~/Maildir', ops: [{ op: 'flags', mailbox: 'INBOX', uid: 1, flags: ['\\Seen'], keywords: [] }] })], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  // we change message 2: the other process's modseq is taken into account, not handed out again
  await f.setFlags(f.message(2)!, ['\\Flagged'], []);
  assert.equal(f.message(2)!.modseq, h0 + 2);
  await new Promise((res) => setTimeout(res, 20));
  await f.sync();
  assert.equal(f.message(1)!.modseq, h0 + 1, "the other process's change keeps its modseq here (no second one for the same change)");
  assert.equal(f.highestModseq, h0 + 2);
  ModseqState.forgetAll();
  const g = await openInbox(home);
  assert.deepEqual(g.messages.map((m) => m.modseq), [h0 + 1, h0 + 2, f.message(3)!.modseq]);
  assert.equal(g.highestModseq, h0 + 2);
});

test('modseq: a folder first opened with the plain cipher (before the user key was unlocked) is sealed once the user cipher comes', async (t) => {
  // a mail-crypt login reads the INBOX GUID before its key is open: that first handle must not
  // leave this process writing frames that the user's other processes (sealing) cannot open
  ModseqState.forgetAll();
  const home = tempDir(t);
  const plain = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await plain.ensureRoot();
  const f0 = await plain.open('INBOX');
  await f0.sync();
  const f = await openInbox(home, testCipher);
  assert.equal(f.highestModseq, 1, 'a folder that never handed out a modseq starts at 1 (no jump for the plain file it had)');
  await f.append(Buffer.from('Subject: a\n\nx\n'));
  await f.setFlags(f.messages[0], ['\\Seen'], []);
  assert.equal(f.message(1)!.modseq, 3, 'APPEND, then STORE');
  const raw = readFileSync(join(home, 'Maildir', MODSEQ_FILE));
  assert.ok(!raw.includes(Buffer.from('\nm 1 ')), 'no plaintext modseq record on disk');
  // another process (a fresh state) with the user cipher reads the same modseq
  const seen = f.message(1)!.modseq;
  ModseqState.forgetAll();
  const g = await openInbox(home, testCipher);
  assert.equal(g.message(1)!.modseq, seen, 'the other process reads what this one wrote');
});

/** A fresh store (this process's modseq states forgotten) whose INBOX holds one message, synced. */
async function inboxWithOneMessage(t: import('node:test').TestContext) {
  ModseqState.forgetAll();
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const folder = await store.open('INBOX');
  await folder.append(Buffer.from('Subject: a\n\nx\n'));
  await folder.sync();
  return { home, store, folder };
}

test('modseq: a catch-up that read the file before this process wrote a newer change does not put the older one back', async (t) => {
  // one process (state `a`) reads frames without the lock (a NOOP's catch-up) while one of its own
  // STOREs takes the lock, reads the same frames and writes a newer modseq for the same message:
  // the unlocked read, finishing last, must not apply what it read over the newer entry
  const { home, folder: f } = await inboxWithOneMessage(t);
  const a = ModseqState.of(f.controlDir);
  // the other process changes the message: a frame this process has not read yet
  ModseqState.forgetAll();
  const other = await openInbox(home);
  await other.setFlags(other.message(1)!, ['\\Seen'], []);
  const theirs = other.message(1)!.modseq;
  // hold the catch-up's read after it has read the file, until the STORE below is on disk
  const modseqPath = join(f.controlDir, MODSEQ_FILE);
  const realOpen = fsp.open;
  let reached!: () => void;
  const atRead = new Promise<void>((r) => { reached = r; });
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let held = false;
  fsp.open = (async (...args: Parameters<typeof realOpen>) => {
    const fh = await realOpen(...args);
    if (held || args[0] !== modseqPath || args[1] !== 'r') return fh;
    held = true;
    const read = fh.read.bind(fh) as (...r: unknown[]) => Promise<unknown>;
    (fh as unknown as { read: (...r: unknown[]) => Promise<unknown> }).read = async (...r: unknown[]) => {
      const res = await read(...r);
      reached();
      await gate;
      return res;
    };
    return fh;
  }) as typeof realOpen;
  t.after(() => { fsp.open = realOpen; });
  const catchUp = a.catchUp(() => f.messages, -1);
  await atRead;
  fsp.open = realOpen;
  await f.setFlags(f.message(1)!, ['\\Seen', '\\Flagged'], []);
  const ours = f.message(1)!.modseq;
  assert.ok(ours > theirs, 'our change comes after theirs');
  release();
  await catchUp;
  assert.equal(a.modseqOf(1), ours, 'the entry keeps the newer modseq');
  await f.sync();
  assert.equal(f.message(1)!.modseq, ours, 'the message keeps its MODSEQ');
  ModseqState.forgetAll();
  const g = await openInbox(home);
  assert.equal(g.message(1)!.modseq, ours, 'and the file says so too');
});

test('modseq: every handle of a process takes the modseq another process wrote, not only the one that read it first', async (t) => {
  // process 1 has the selected folder's handle (x) and an APPEND/COPY handle (y); process 2 renames a
  // message and writes its modseq after process 1's scan already gave the rename one of its own
  const { home, store, folder: x } = await inboxWithOneMessage(t);
  const y = await store.open('INBOX');
  await y.sync();
  ModseqState.forgetAll();
  const other = await openInbox(home);
  await other.setFlags(other.message(1)!, ['\\Seen'], [], { deferModseq: true });
  await x.sync();
  const early = x.message(1)!.modseq;
  await other.commitModseqs();
  const theirs = other.message(1)!.modseq;
  assert.ok(theirs > early, 'the writer takes the modseq after the one process 1 handed out');
  await y.sync();
  assert.equal(y.message(1)!.modseq, theirs, 'the handle that read the frame takes it');
  await x.sync();
  assert.equal(x.message(1)!.modseq, theirs, 'so does every other handle of the process');
});
