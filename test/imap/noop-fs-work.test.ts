/**
 * What a NOOP costs the file system when nothing changed (Selected.sync,
 * the work of every NOOP, IDLE wake-up and command end): Dovecot's quick
 * check, a stat of new/, cur/ and dovecot-uidlist, plus one of
 * sealmail.modseq (other processes' MODSEQs, as Dovecot reads its log's
 * tail), and no listing or file read; sessions of one mailbox in one process share the check when they
 * ask at the same time. Counted by wrapping node:fs in-process, so extra
 * file-system work on this path cannot come back unnoticed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { MailStore } from '../../src/mailstore/store.js';
import { Selected } from '../../src/imap/selected.js';
import { tempDir } from '../helpers/tmp.js';

const PROMISE_CALLS = ['access', 'appendFile', 'copyFile', 'link', 'lstat', 'mkdir', 'open', 'opendir', 'readFile', 'readdir', 'rename', 'rm', 'stat', 'unlink', 'utimes', 'writeFile'] as const;
const CALLBACK_CALLS = ['fstat', 'lstat', 'open', 'read', 'readFile', 'readdir', 'stat'] as const;

/** Counts node:fs calls by name while `fn` runs. */
async function countFsCalls(fn: () => Promise<void>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const undo: (() => void)[] = [];
  const wrap = (obj: Record<string, unknown>, name: string, label: string) => {
    const orig = obj[name] as (...a: unknown[]) => unknown;
    obj[name] = function (this: unknown, ...a: unknown[]) { counts[label] = (counts[label] ?? 0) + 1; return orig.apply(this, a); };
    undo.push(() => { obj[name] = orig; });
  };
  for (const n of PROMISE_CALLS) wrap(fs.promises as unknown as Record<string, unknown>, n, n);
  for (const n of CALLBACK_CALLS) wrap(fs as unknown as Record<string, unknown>, n, `${n} (callback)`);
  try { await fn(); } finally { for (const u of undo) u(); }
  return counts;
}

test('a no-change NOOP: three stats, no listing, no read; concurrent sessions of one mailbox share them', async (t) => {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const inbox = await store.open('INBOX');
  for (let i = 0; i < 50; i++) await inbox.append(Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`), { flags: i % 3 ? ['\\Seen'] : [], keywords: i % 5 ? [] : ['Work'] });
  const sessions: Selected[] = [];
  for (let i = 0; i < 5; i++) {
    const h = await store.openShared('INBOX');
    t.after(() => h.release());
    const s = new Selected('INBOX', h.folder, false, h.release);
    await s.open();
    sessions.push(s);
  }
  // a folder nobody changed for a while (a listing right after a change is not trusted: MAILDIR_SYNC_SECS)
  const old = new Date(Date.now() - 3_600_000);
  for (const d of ['new', 'cur']) utimesSync(join(home, 'Maildir', d), old, old);
  for (const s of sessions) assert.deepEqual(await s.sync(true), []);

  const one = await countFsCalls(async () => { for (let i = 0; i < 10; i++) assert.deepEqual(await sessions[0].sync(true), []); });
  assert.deepEqual(one, { stat: 40 }, 'one session, 10 NOOPs');

  const all = await countFsCalls(async () => {
    for (let i = 0; i < 10; i++) for (const ups of await Promise.all(sessions.map((s) => s.sync(true)))) assert.deepEqual(ups, []);
  });
  assert.deepEqual(all, { stat: 40 }, '5 sessions, 10 rounds of NOOPs at once');
});
