/**
 * The copy socket between the LMTP process and a mail process
 * (src/server/lmtp-copy.ts), over a real unix socket with a real spool: the
 * key line is all the master reads; each reading the mail side asks for
 * gets the whole message, a reading abandoned halfway is skipped by the
 * next; a message within the spool's in-memory head needs no socket; a
 * peer that sends anything but the ask byte, or asks more than 64 times, is
 * cut off, and a socket closed mid-message fails the reading instead of
 * ending it short.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/lmtp-wire.js';
import { MessageSpool, type SpooledMessage } from '../../src/lmtp/data-spool.js';
import { CopyFromSocket, offerCopy, readCopyKey, streamed } from '../../src/server/lmtp-copy.js';

async function spooled(t: TestContext, dir: string, message: Buffer): Promise<SpooledMessage> {
  const spool = new MessageSpool(dir, (m) => { throw new Error(m); });
  t.after(() => spool.close());
  for (let i = 0; i < message.length; i += 10_000) spool.write(message.subarray(i, i + 10_000));
  return spool.finish();
}

/** A listening socket standing in for the master's: the first connection's key and socket (unread past the key). */
async function copyPair(t: TestContext, msg: SpooledMessage, onError: (e: string) => void = (e) => { throw new Error(e); }): Promise<{ key: string; mail: Socket; lmtp: Socket }> {
  const path = join(tempDir(t, 'lmtp-copy'), 'copy');
  let got: (v: { key: string; s: Socket }) => void;
  const accepted = new Promise<{ key: string; s: Socket }>((r) => { got = r; });
  const server = createServer({ pauseOnConnect: true }, (s) => readCopyKey(s, (key) => got({ key, s })));
  await new Promise<void>((r) => server.listen(path, () => r()));
  t.after(() => server.close());
  const lmtp = offerCopy(path, 'k'.repeat(32), msg, onError);
  t.after(() => lmtp.destroy());
  const { key, s } = await accepted;
  t.after(() => s.destroy());
  return { key, mail: s, lmtp };
}

const message = (size: number) => Buffer.from(Array.from({ length: Math.ceil(size / 40) }, (_, i) => `line ${String(i).padStart(8, '0')} of the copy test\n`).join('').slice(0, size));

test('a spooled message crosses the copy socket whole, as often as asked, an abandoned reading skipped', async (t) => {
  const sent = message(3 * 1024 * 1024 + 17);
  const msg = await spooled(t, tempDir(t, 'lmtp-copy-spool'), sent);
  assert.equal(streamed(msg), true);
  const { key, mail } = await copyPair(t, msg);
  assert.equal(key, 'k'.repeat(32));
  const copy = new CopyFromSocket(mail, msg.size, msg.crlfSize, msg.head);
  // a reading abandoned after its first chunk (a save that failed)
  for await (const c of copy.stream()) { assert.ok(c.length > 0); break; }
  assert.ok((await copy.buffer()).equals(sent), 'the reading after an abandoned one');
  const parts: Buffer[] = [];
  for await (const c of copy.stream()) parts.push(c);
  assert.ok(Buffer.concat(parts).equals(sent), 'a second full reading');
  assert.ok(copy.head.equals(sent.subarray(0, copy.head.length)));
});

test('a message within the in-memory head needs no socket', async (t) => {
  const sent = message(5000);
  const msg = await spooled(t, tempDir(t, 'lmtp-copy-spool'), sent);
  assert.equal(streamed(msg), false);
  const copy = new CopyFromSocket(null, msg.size, msg.crlfSize, msg.head);
  assert.ok((await copy.buffer()).equals(sent));
});

test('anything but the ask byte cuts the copy socket; a socket closed mid-message fails the reading', async (t) => {
  const sent = message(1024 * 1024);
  const msg = await spooled(t, tempDir(t, 'lmtp-copy-spool'), sent);
  const { mail, lmtp } = await copyPair(t, msg);
  mail.write('X');
  await until('the copy socket cut', () => lmtp.destroyed);
  const copy = new CopyFromSocket(mail, msg.size, msg.crlfSize, msg.head);
  await assert.rejects(copy.buffer(), /closed the copy stream/);
});

test('a mail process asking for its copy more than 64 times is cut off', async (t) => {
  const msg = await spooled(t, tempDir(t, 'lmtp-copy-spool'), message(200 * 1024));
  const errors: string[] = [];
  const { mail, lmtp } = await copyPair(t, msg, (e) => errors.push(e));
  mail.on('data', () => undefined);
  mail.write(Buffer.alloc(65, 'S'));
  await until('the copy socket cut', () => lmtp.destroyed, 5000);
  assert.deepEqual(errors, ['the mail process asked for its copy more than 64 times']);
});
