/**
 * A Maildir folder over its compact message table, on real directories:
 * views (MessageRef) taken before a sync see the state after it; a flag
 * change by another handle, an expunge and a new delivery show through
 * sync(); a view of an expunged message keeps its last state (what a
 * session still shows until it announces the EXPUNGE); SELECT's first unseen
 * and the UID list come from the table. readHeader(): the header through its
 * empty line, whatever the body, and null for a header longer than asked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MailStore } from '../../src/mailstore/store.js';
import { tempDir } from '../helpers/tmp.js';

async function inboxWith(t: Parameters<typeof tempDir>[0], msgs: string[]) {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const inbox = await store.open('INBOX');
  for (const [i, m] of msgs.entries()) await inbox.append(Buffer.from(m), { flags: i % 2 ? ['\\Seen'] : [] });
  return { store, inbox };
}

const msg = (i: number) => `From: a${i}@example.org\nSubject: s${i}\n\nbody ${i}\n`;

test('views follow syncs: another handle\'s STORE, EXPUNGE and APPEND', async (t) => {
  const { store, inbox } = await inboxWith(t, [0, 1, 2, 3, 4].map(msg));
  await inbox.sync();
  assert.deepEqual(inbox.uidList(), [1, 2, 3, 4, 5]);
  assert.equal(inbox.firstWithout('\\Seen'), 0);
  const v3 = inbox.message(3)!;
  const v4 = inbox.message(4)!;
  assert.deepEqual([...v3.flags], []);
  const other = await store.open('INBOX');
  await other.sync();
  await other.setFlags(other.message(3)!, ['\\Flagged', '\\Seen'], ['Work']);
  await other.expunge([other.message(4)!]);
  await other.append(Buffer.from(msg(9)));
  await inbox.sync();
  assert.deepEqual([...v3.flags].sort(), ['\\Flagged', '\\Seen']);
  assert.deepEqual(v3.keywords, ['Work']);
  assert.ok(v3.changed > 0);
  assert.deepEqual(inbox.uidList(), [1, 2, 3, 5, 6]);
  assert.equal(inbox.message(4), undefined);
  // the expunged message as last seen, through the old view and removedMessage()
  assert.deepEqual([...v4.flags], ['\\Seen']);
  assert.equal(inbox.removedMessage(4)?.uid, 4);
  assert.equal(inbox.messages.length, 5);
  assert.deepEqual(inbox.messages.map((m) => m.uid), [1, 2, 3, 5, 6]);
  assert.deepEqual(inbox.keywordOrder, ['Work']);
});

test('own STORE and EXPUNGE update the table at once', async (t) => {
  const { inbox } = await inboxWith(t, [0, 1, 2].map(msg));
  await inbox.sync();
  await inbox.setFlags(inbox.message(1)!, ['\\Seen'], []);
  assert.equal(inbox.firstWithout('\\Seen'), 2);
  assert.deepEqual([...inbox.message(1)!.flags], ['\\Seen']);
  assert.deepEqual(await inbox.expunge([inbox.message(2)!]), [2]);
  assert.deepEqual(inbox.uidList(), [1, 3]);
  assert.equal(inbox.firstWithout('\\Seen'), 1);
  assert.equal(inbox.message(3)!.size, Buffer.byteLength(msg(2)));
});

test('readHeader: the header through its empty line; none, empty, or too long', async (t) => {
  const long = `X-Long: ${'x'.repeat(20_000)}\nSubject: l\n\nbody\n`;
  const { inbox } = await inboxWith(t, [msg(0), 'Subject: only a header\n', '\nbody without header\n', long, 'A: 1\r\n\r\nB: not a header\n\nmore\n']);
  await inbox.sync();
  const h = async (uid: number, max?: number) => (await inbox.readHeader(inbox.message(uid)!, max))?.toString('latin1') ?? null;
  assert.equal(await h(1), 'From: a0@example.org\nSubject: s0\n\n');
  assert.equal(await h(2), 'Subject: only a header\n');
  assert.equal(await h(3), '\n');
  assert.equal(await h(4), null, 'a header beyond 16 KiB is not cut');
  assert.equal((await h(4, 32_768))?.length, long.indexOf('\n\n') + 2);
  // stored with LF (Dovecot's mail_save_crlf=no): the first empty line ends it, not the body's
  assert.equal(await h(5), 'A: 1\n\n');
});
