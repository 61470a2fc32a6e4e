/**
 * Real IMAP clients against a running Sealmail: imapflow (npm) over IMAPS and
 * STARTTLS doing a whole mail-client session, an IDLE session woken by
 * another connection's APPEND, and Python's imaplib doing the classic flow.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ImapFlow } from 'imapflow';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { findTool, inCI } from '../../helpers/tools.js';

const MSG = (n: number) => `From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hello ${n}\r\nMessage-ID: <m${n}@example.org>\r\n\r\nbody number ${n}\r\n`;

function client(port: number, secure: boolean, user = 'bob@example.org'): ImapFlow {
  return new ImapFlow({ host: '127.0.0.1', port, secure, auth: { user, pass: 'pass' }, logger: false, tls: { rejectUnauthorized: false }, doSTARTTLS: !secure });
}

test('imapflow: a full client session over IMAPS', async (t) => {
  const srv = await startSealmail(t);
  const c = client(srv.imapsPort, true);
  await c.connect();
  await c.mailboxCreate('Archive');
  const list = (await c.list()).map((m) => m.path).sort();
  assert.deepEqual(list, ['Archive', 'INBOX']);
  for (let i = 1; i <= 3; i++) await c.append('INBOX', MSG(i), i === 1 ? ['\\Seen'] : []);
  const lock = await c.getMailboxLock('INBOX');
  try {
    assert.equal((c.mailbox as { exists: number }).exists, 3);
    const seen: string[] = [];
    for await (const m of c.fetch('1:*', { envelope: true, flags: true, uid: true, source: true, bodyStructure: true })) {
      seen.push(`${m.uid} ${m.envelope?.subject} ${[...(m.flags ?? [])].join(',')} ${m.envelope?.from?.[0]?.address}`);
      assert.equal(m.source?.toString(), MSG(m.uid!));
      assert.equal(m.bodyStructure?.type, 'text/plain');
    }
    // imapflow ENABLEs IMAP4rev2 when it is announced: RFC 9051 has no \Recent (its searches below get ESEARCH)
    assert.deepEqual(seen, ['1 hello 1 \\Seen alice@example.org', '2 hello 2  alice@example.org', '3 hello 3  alice@example.org']);
    assert.deepEqual(await c.search({ seen: false }), [2, 3]);
    assert.deepEqual(await c.search({ subject: 'hello 2' }), [2]);
    await c.messageFlagsAdd('2', ['\\Flagged', '$Label1']);
    const f = await c.fetchOne('2', { flags: true });
    assert.ok(f && f.flags?.has('\\Flagged') && f.flags.has('$Label1'));
    const copied = await c.messageCopy('1', 'Archive');
    assert.ok(copied && copied.uidMap?.get(1) === 1);
    const moved = await c.messageMove('3', 'Archive');
    assert.ok(moved && moved.uidMap?.get(3) === 2);
    assert.equal((c.mailbox as { exists: number }).exists, 2);
    await c.messageDelete('1');
    assert.equal((c.mailbox as { exists: number }).exists, 1);
  } finally {
    lock.release();
  }
  const st = (await c.status('Archive', { messages: true, uidNext: true, unseen: true })) as { messages?: number; uidNext?: number; unseen?: number };
  assert.deepEqual([st.messages, st.uidNext, st.unseen], [2, 3, 1]);
  await c.logout();
  assert.equal(await srv.stop(), 0);
});

test('imapflow over STARTTLS, and IDLE woken by another connection\'s APPEND', async (t) => {
  const srv = await startSealmail(t);
  const idler = client(srv.imapPort, false);
  await idler.connect();
  await idler.mailboxOpen('INBOX');
  const woke = new Promise<number>((resolve) => idler.on('exists', (d: { count: number }) => resolve(d.count)));
  const idling = idler.idle().catch(() => undefined); // resolves when IDLE ends
  const writer = client(srv.imapsPort, true);
  await writer.connect();
  const t0 = Date.now();
  await writer.append('INBOX', MSG(7));
  const count = await Promise.race([woke, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('IDLE was not woken within 5 s')), 5000))]);
  assert.equal(count, 1);
  t.diagnostic(`IDLE woke ${Date.now() - t0} ms after the APPEND`);
  await writer.logout();
  await idler.logout();
  await idling;
});

test('Python imaplib: LOGIN, SELECT, APPEND, FETCH, SEARCH, STORE, EXPUNGE, wrong password', async (t) => {
  const py = findTool('python3');
  if (!py) { if (inCI) throw new Error('CI=true and python3 is missing'); t.skip('python3 missing'); return; }
  const srv = await startSealmail(t);
  const script = `
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
M = imaplib.IMAP4('127.0.0.1', ${srv.imapPort})
M.starttls(ssl_context=ctx)
try:
    M.login('carol@example.org', 'wrong')
    print('LOGIN-ACCEPTED-WRONG')
except imaplib.IMAP4.error as e:
    print('wrong-password-refused', e)
print(M.login('carol@example.org', 'pass')[0])
print(M.select('INBOX')[1][0].decode())
print(M.append('INBOX', '(\\\\Draft)', None, b'Subject: py\\r\\n\\r\\nfrom python\\r\\n')[0])
print(M.select('INBOX')[1][0].decode())
typ, data = M.fetch('1', '(FLAGS BODY.PEEK[TEXT])')
print(data[0][0].decode())
print(data[0][1].decode().strip())
print(M.search(None, 'DRAFT')[1][0].decode())
print(M.store('1', '+FLAGS', '(\\\\Deleted)')[1][0].decode())
print(M.expunge()[1])
print(M.logout()[0])
`;
  const r = spawnSync(py, ['-c', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^wrong-password-refused .*AUTHENTICATIONFAILED.*Authentication failed/);
  assert.deepEqual(lines.slice(1), ['OK', '0', 'OK', '1', '1 (FLAGS (\\Draft) BODY[TEXT] {13}', 'from python', '1', '1 (FLAGS (\\Deleted \\Draft))', "[b'1']", 'BYE']);
});
