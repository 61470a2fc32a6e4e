/**
 * NOTIFY's watch of other mailboxes (src/imap/notify.ts) is cheap: a NOOP
 * with nothing changed looks at no mailbox (no STATUS computed), a change
 * is looked at in that mailbox only, and mailboxes beyond the watch limit
 * are looked at again on NOOP (flush) only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MailStore } from '../../src/mailstore/store.js';
import { NotifyWatch } from '../../src/imap/notify.js';
import { parseNotify } from '../../src/imap/notify-filter.js';
import { tempDir } from '../helpers/tmp.js';
import type { ImapArg } from '../../src/imap/wire/parser.js';

const a = (value: string): ImapArg => ({ type: 'atom', value });
const l = (...items: ImapArg[]): ImapArg => ({ type: 'list', items });

async function setup(t: import('node:test').TestContext, boxes: string[], maxWatched?: number) {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  for (const b of boxes) await store.create(b);
  const looked: string[] = [];
  const status = store.status.bind(store);
  store.status = (name, track) => { looked.push(name); return status(name, track); };
  const r = parseNotify([a('SET'), l(a('PERSONAL'), l(a('MessageNew'), a('MessageExpunge')))], () => null);
  assert.ok(r.ok);
  const w = new NotifyWatch({ store, condstore: false, selectedName: () => null, mailboxOut: (n) => n }, r.spec, maxWatched);
  await w.start();
  t.after(() => w.close());
  looked.length = 0;
  const text = (vs: unknown[][]) => vs.map((v) => JSON.stringify(v));
  return { store, w, looked, look: async () => { await w.flush(); return text(await w.collect()); } };
}

test('NOTIFY: a NOOP with nothing changed looks at no mailbox; a change only at its own', async (t) => {
  const boxes = Array.from({ length: 50 }, (_, i) => `box${i}`);
  const { store, w, looked, look } = await setup(t, boxes);
  assert.deepEqual(await look(), []);
  assert.deepEqual(looked, [], 'no STATUS of unchanged mailboxes');
  const f = await store.open('box7');
  await f.append(Buffer.from('Subject: x\n\nbody\n'));
  assert.ok(w.pending, 'the change is seen at once (in-process bus)');
  const out = await look();
  assert.deepEqual(looked, ['box7']);
  assert.equal(out.length, 1);
  assert.match(out[0], /"STATUS".*"box7".*"MESSAGES".*1.*"UIDNEXT".*2.*"UNSEEN".*1/);
});

test('NOTIFY: mailboxes beyond the watch limit are looked at again on NOOP', async (t) => {
  const { store, w, looked, look } = await setup(t, ['one', 'two', 'three'], 1);
  const watched = (await look(), looked.slice());
  assert.equal(watched.length, 3, 'INBOX and two of three unwatched mailboxes looked at on NOOP, the watched one not');
  looked.length = 0;
  const unwatched = ['one', 'two', 'three'].filter((n) => watched.includes(n));
  const f = await store.open(unwatched[0]);
  await f.append(Buffer.from('Subject: x\n\nbody\n'));
  assert.equal(w.pending, false, 'no watch: nothing marked');
  const out = await look();
  assert.equal(out.length, 1);
  assert.match(out[0], new RegExp(`"${unwatched[0]}"`));
});

test('NOTIFY: several renames, a delete and a create seen in one look', async (t) => {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  for (const b of ['a', 'b', 'c', 'd']) await store.create(b);
  const r = parseNotify([a('SET'), l(a('PERSONAL'), l(a('MailboxName')))], () => null);
  assert.ok(r.ok);
  const w = new NotifyWatch({ store, condstore: false, selectedName: () => null, mailboxOut: (n) => n }, r.spec);
  await w.start();
  t.after(() => w.close());
  await store.rename('a', 'a2');
  await store.rename('b', 'b2');
  await store.delete('c');
  await store.create('e');
  await w.flush();
  const out = (await w.collect()).map((v) => JSON.stringify(v));
  assert.equal(out.length, 4, out.join('\n'));
  assert.match(out[0], /"\\\\NonExistent".*"c"/);
  assert.ok(out.slice(1, 3).some((x) => /"a2".*"OLDNAME".*"a"/.test(x)) && out.slice(1, 3).some((x) => /"b2".*"OLDNAME".*"b"/.test(x)), out.join('\n'));
  assert.match(out[3], /"LIST".*"e"/);
});
