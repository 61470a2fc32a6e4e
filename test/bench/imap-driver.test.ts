/**
 * The load generator's invariant checker (bench/imap-driver.ts) against a
 * scripted server over a real socket: each kind of protocol error it must
 * count (out-of-order tag, unexpected NO/BAD, untagged BYE before LOGOUT,
 * FETCH beyond EXISTS) is counted exactly once, the allowed expunge race
 * apart, and a literal whose body holds a line that looks like the tagged
 * reply is skipped by its length, not taken for that reply.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { CheckedConn, errorCount } from '../../bench/imap-driver.js';

/** A server that greets, then answers the n-th command line with replies[n](tag). */
async function scripted(replies: ((tag: string) => string)[]): Promise<{ port: number; close: () => void }> {
  const socks: Socket[] = [];
  const srv = createServer((s) => {
    socks.push(s);
    s.write('* OK scripted\r\n');
    let buf = '';
    let n = 0;
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const reply = replies[n++];
        const text = reply?.(line.split(' ')[0]);
        if (text) s.write(text);
        if (text?.startsWith('* BYE') && !text.includes(' OK ')) s.end(); // a BYE of its own: the server closes
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  return { port, close: () => { for (const s of socks) s.destroy(); srv.close(); } };
}

test('the invariant checker counts each protocol error once and skips literals by length', async (t) => {
  const body = 'Subject: x\r\n\r\nm3 OK this line is inside a literal\r\n';
  const srv = await scripted([
    (tag) => `* 2 EXISTS\r\n${tag} OK SELECT done\r\n`,
    (tag) => `x9 OK not mine\r\n${tag} OK done\r\n`, // out of order, then the right reply
    (tag) => `* 1 FETCH (BODY[] {${Buffer.byteLength(body)}}\r\n${body})\r\n${tag} OK fetched\r\n`,
    (tag) => `${tag} NO [EXPUNGEISSUED] Some of the requested messages no longer exist\r\n`,
    (tag) => `${tag} NO Something else went wrong\r\n`,
    (tag) => `* 5 FETCH (FLAGS ())\r\n${tag} OK fetched\r\n`,
    (tag) => `${tag} BAD Error in IMAP command\r\n`,
    () => '* BYE going away\r\n',
  ]);
  t.after(srv.close);
  const c = await CheckedConn.open(srv.port, false, 10_000);
  t.after(() => c.sock.destroy());
  await c.cmd('SELECT INBOX');
  assert.equal(c.exists, 2);
  await c.cmd('NOOP');
  assert.equal(c.last, 'OK done', 'the reply with our tag, not the one before it');
  await c.cmd('FETCH 1 BODY[]');
  assert.equal(c.last, 'OK fetched', 'the reply after the literal, not the line inside it');
  await c.cmd('FETCH 2 BODY[]');
  await c.cmd('STORE 1 +FLAGS (\\Seen)');
  await c.cmd('FETCH 1 FLAGS');
  await c.cmd('FOO');
  await c.cmd('NOOP'); // answered with BYE and then the close
  assert.deepEqual(c.errors, { no: 1, bad: 1, bye: 2, outOfOrder: 1, seqRange: 1, timeout: 0, expungeRace: 1 });
  assert.equal(errorCount(c.errors), 6);
});

test('a BYE after LOGOUT is no error', async (t) => {
  const srv = await scripted([(tag) => `* BYE Logging out\r\n${tag} OK Logout completed.\r\n`]);
  t.after(srv.close);
  const c = await CheckedConn.open(srv.port, false, 10_000);
  t.after(() => c.sock.destroy());
  await c.logout();
  assert.equal(errorCount(c.errors), 0);
});
