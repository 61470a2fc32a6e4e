/**
 * \Recent across sessions of one user (RFC 3501 §2.3.2: a message is recent
 * in one session only): the session that saves into its own selected
 * mailbox keeps it, however early another session syncs, and two sessions
 * syncing at once never both take a new delivery. Selected views over a
 * real Maildir, no server: the interleavings are forced, not hoped for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MailStore } from '../../src/mailstore/store.js';
import { Selected, type Update } from '../../src/imap/selected.js';
import { tempDir } from '../helpers/tmp.js';

const MSG = Buffer.from('From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n');

async function twoSessions(t: Parameters<typeof tempDir>[0]) {
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home: tempDir(t) });
  await store.ensureRoot();
  const open = async () => {
    const { folder, release } = await store.openShared('INBOX');
    const sel = new Selected('INBOX', folder, false, release);
    await sel.open();
    return sel;
  };
  return { store, a: await open(), b: await open() };
}

const recentOf = (ups: Update[]) => ups.filter((u) => u.kind === 'recent').map((u) => (u as { count: number }).count);

test('APPEND into the selected mailbox: \\Recent for the saving session even when another one syncs first', async (t) => {
  const { store, a, b } = await twoSessions(t);
  const saver = await store.open('INBOX'); // APPEND opens its own handle
  await saver.append(MSG, { tookRecent: (from, to) => a.tookRecent(from, to) });
  // the idling session hears of the message before the saver's own end-of-command sync
  const other = await b.sync(true);
  assert.deepEqual(other.filter((u) => u.kind === 'exists'), [{ kind: 'exists', count: 1 }]);
  assert.deepEqual(recentOf(other), []);
  const own = await a.sync(true);
  assert.deepEqual(recentOf(own), [1]);
  assert.equal(a.recent.size, 1);
  assert.equal(b.recent.size, 0);
});

test('a delivery is \\Recent in exactly one of two sessions syncing at once', async (t) => {
  const { store, a, b } = await twoSessions(t);
  const lmtp = await store.open('INBOX');
  for (let i = 0; i < 5; i++) {
    await lmtp.append(MSG);
    await Promise.all([a.sync(true), b.sync(true)]);
    assert.equal(a.recent.size + b.recent.size, i + 1, `delivery ${i + 1}: recent in ${a.recent.size} + ${b.recent.size}`);
  }
});
