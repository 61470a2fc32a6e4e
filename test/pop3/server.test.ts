/**
 * POP3 in the running server: Python's poplib, a real client, pulls the
 * mail (RETR + DELE + QUIT) over port "110" with STLS and over "995"
 * (pop3s, implicit TLS), in both process models — the service pools when
 * mail_uid is set, and, as root without mail_uid, the root master with its
 * pop3-login processes and a mail process of the user's uid — and the
 * Maildir is empty after. `protocols` without pop3 opens no POP3 listener
 * even when `service pop3-login` names one. A hostile client (lines over
 * the limits, binary garbage, commands before login, a pipelined flood, a
 * reader that never reads a big RETR) ends only its own session: a
 * logged-in session beside it goes on and gets its whole message, and the
 * server takes new logins.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';
import { requireTool } from '../helpers/tools.js';
import { Pop3Wire, pop3Script } from '../helpers/pop3-client.js';

const root = process.getuid?.() === 0;

async function startPop3(t: TestContext, opts: { rootMaster?: boolean; protocols?: string; extra?: string; passdb?: string } = {}): Promise<{ srv: SealmailServer; pop3: number; pop3s: number }> {
  const pop3 = await freePort();
  const pop3s = await freePort();
  const srv = await startSealmail(t, {
    passdb: opts.passdb,
    rewriteConf: (c) => {
      let text = c.replace(/^protocols = imap$/m, `protocols = ${opts.protocols ?? 'imap pop3'}`);
      if (opts.rootMaster) text = text.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, '');
      return text;
    },
    extraConf: `${opts.extra ?? ''}service pop3-login {\n  inet_listener pop3 {\n    port = ${pop3}\n  }\n  inet_listener pop3s {\n    port = ${pop3s}\n  }\n}\n`,
    ready: (o) => o.includes('starting up for'),
  });
  return { srv, pop3, pop3s };
}

function deliver(srv: SealmailServer, user: string, messages: string[]): void {
  const md = join(srv.home(user), 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(md, d), { recursive: true });
  messages.forEach((m, i) => writeFileSync(join(md, 'new', `17000000${i + 10}.M${i}P1.host`), m));
  if (root) {
    const { uid, gid } = mailIds();
    for (const p of [srv.home(user), md, ...['cur', 'new', 'tmp'].map((d) => join(md, d)), ...readdirSync(join(md, 'new')).map((f) => join(md, 'new', f))]) chownSync(p, uid, gid);
  }
}

const POPLIB = `
import json, poplib, ssl, sys
port, sport, user, keep = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = {}
p = poplib.POP3('127.0.0.1', port, timeout=60)
out['capa'] = sorted(p.capa().keys())
p.stls(context=ctx)
p.user(user)
p.pass_('pass')
n, size = p.stat()
out['first'] = {'count': n, 'size': size, 'uidl': [x.decode() for x in p.uidl()[1]], 'messages': []}
for i in range(1, n - keep + 1):
    out['first']['messages'].append(b'\\r\\n'.join(p.retr(i)[1]).decode('latin1'))
    p.dele(i)
p.quit()
s = poplib.POP3_SSL('127.0.0.1', sport, context=ctx, timeout=60)
s.user(user)
s.pass_('pass')
n, size = s.stat()
out['second'] = {'count': n, 'messages': []}
for i in range(1, n + 1):
    out['second']['messages'].append(b'\\r\\n'.join(s.retr(i)[1]).decode('latin1'))
    s.dele(i)
s.quit()
print(json.dumps(out))
`;

const MAIL = [
  'From: a@example.org\nSubject: one\n\nfirst\n.dot line\n',
  'From: b@example.org\nSubject: two\n\nsecond\n',
  'From: c@example.org\nSubject: three\n\nthird\n',
];

async function pullWithPoplib(t: TestContext, rootMaster: boolean): Promise<void> {
  // with CI=true a missing python3 fails the test (tools.ts), never skips it
  const python = requireTool(t, 'python3');
  if (!python) return;
  const { srv, pop3, pop3s } = await startPop3(t, { rootMaster });
  const user = 'pull@example.org';
  deliver(srv, user, MAIL);
  const r = spawnSync(python, ['-c', POPLIB, String(pop3), String(pop3s), user, '1'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `poplib: ${r.stderr}\n${srv.output()}`);
  const out = JSON.parse(r.stdout) as { capa: string[]; first: { count: number; uidl: string[]; messages: string[] }; second: { count: number; messages: string[] } };
  assert.ok(out.capa.includes('STLS') && out.capa.includes('UIDL'), `CAPA: ${out.capa.join(' ')}`);
  assert.equal(out.first.count, 3);
  assert.equal(out.first.uidl.length, 3);
  // poplib un-stuffs the dots and splits lines: the messages come back as they were written
  assert.deepEqual(out.first.messages, MAIL.slice(0, 2).map((m) => m.replace(/\n$/, '').replace(/\n/g, '\r\n')));
  assert.equal(out.second.count, 1, 'the DELEted messages are gone after QUIT, the kept one is there');
  assert.deepEqual(out.second.messages, [MAIL[2].replace(/\n$/, '').replace(/\n/g, '\r\n')]);
  const md = join(srv.home(user), 'Maildir');
  assert.deepEqual([...readdirSync(join(md, 'cur')), ...readdirSync(join(md, 'new'))], [], 'Maildir empty after the last QUIT');
  // pop3_logout_format's line, from the process that served the session (it may come a moment after QUIT's reply)
  const logout = /pop3\(pull@example\.org\)(<\d+>)?(<[^>]+>)?: Info: Disconnected: Logged out top=0\/0, retr=1\/\d+, del=1\/1, size=\d+/;
  for (const end = Date.now() + 20_000; !logout.test(srv.output());) {
    if (Date.now() > end) assert.fail(`no logout line:\n${srv.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('poplib pulls mail over STLS (110) and pop3s (995): service pools (mail_uid set)', async (t) => {
  await pullWithPoplib(t, false);
});

test('poplib pulls mail over STLS and pop3s: root master (no mail_uid), pop3-login and the user\'s mail process', { skip: root ? false : 'needs root' }, async (t) => {
  await pullWithPoplib(t, true);
});

test('protocols without pop3: no POP3 listener opens, though service pop3-login names one', async (t) => {
  const { srv, pop3 } = await startPop3(t, { protocols: 'imap' });
  assert.doesNotMatch(srv.output(), /pop3-login/);
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(pop3, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
  assert.ok(refused, `port ${pop3} must not be listening`);
});

test('a hostile POP3 client harms no other session', async (t) => {
  const { srv, pop3 } = await startPop3(t);
  const user = 'calm@example.org';
  const big = 'Subject: big\n\n' + ('y'.repeat(70) + '\n').repeat(40_000);
  deliver(srv, user, [big, 'Subject: small\n\nsmall\n']);
  const pidsBefore = srv.output().match(/pop3: \d+ worker processes \(([\d ]+)\)/)?.[1];
  // the calm client logs in first and stays
  const calm = await Pop3Wire.connect(pop3);
  await calm.reply(false);
  calm.send(`USER ${user}\r\nPASS pass\r\n`);
  assert.equal(await calm.reply(false), '+OK\r\n');
  assert.equal(await calm.reply(false), '+OK Logged in.\r\n');

  // 1. a line over pop3-login's buffer, then binary garbage with NULs, commands before login
  const hostile: string[][] = await Promise.all([
    pop3Script(pop3, ['X'.repeat(5000)]),
    pop3Script(pop3, ['\x00\x01\x02garbage\xff', 'STAT', 'RETR 1', 'DELE 1']),
    pop3Script(pop3, [`USER ${user}`, 'PASS pass', 'Z'.repeat(10_000)]),
  ]);
  assert.equal(hostile[0][1], '-ERR Input buffer full, aborting\r\n');
  assert.equal(hostile[1].at(-1), '-ERR Too many invalid bad commands.\r\n');
  assert.equal(hostile[2].at(-1), '-ERR Input line too long.\r\n');

  // 2. a pipelined flood: 20 000 NOOPs in one write, then QUIT; every reply comes, in order
  const flood = await Pop3Wire.connect(pop3);
  await flood.reply(false);
  flood.send(`USER ${user}\r\nPASS pass\r\n${'NOOP\r\n'.repeat(20_000)}QUIT\r\n`);
  const all = await flood.rest();
  assert.equal(all.split('\r\n').filter((l) => l === '+OK').length, 20_001);
  assert.match(all, /\+OK Logging out\.\r\n<closed>$/);

  // 3. a client that asks for the big message and never reads: only its own session waits
  const stuck = net.connect(pop3, '127.0.0.1');
  stuck.on('error', () => undefined);
  stuck.write(`USER ${user}\r\nPASS pass\r\n${'RETR 1\r\n'.repeat(50)}`);
  stuck.pause();
  t.after(() => stuck.destroy());

  // the calm session goes on: its whole big message, byte for byte
  calm.send('RETR 1\r\n');
  const got = await calm.reply(true);
  const expected = big.replace(/\n/g, '\r\n');
  assert.equal(got, `+OK ${expected.length} octets\r\n${expected}.\r\n`);
  calm.send('QUIT\r\n');
  assert.equal(await calm.reply(false), '+OK Logging out.\r\n');
  calm.close();
  // and new logins are served by the same processes (none crashed)
  const again = await pop3Script(pop3, [`USER ${user}`, 'PASS pass', 'STAT', 'QUIT']);
  assert.match(again[3], /^\+OK 2 \d+\r\n$/);
  assert.equal(srv.output().match(/pop3: \d+ worker processes \(([\d ]+)\)/)?.[1], pidsBefore);
  assert.doesNotMatch(srv.output(), /Panic|Fatal|killed by signal/);
});

test('USER/PASS with a UTF-8 password: its bytes reach the passdb as sent, as pop3-login passes them', async (t) => {
  const { pop3 } = await startPop3(t, { passdb: 'passdb {\n  driver = static\n  args = password=pässwörd\n}' });
  const r = await pop3Script(pop3, ['USER utf8@example.org', 'PASS pässwörd', 'QUIT']);
  assert.deepEqual(r.slice(1, 3), ['+OK\r\n', '+OK Logged in.\r\n']);
});

test('mail_max_userip_connections of protocol pop3: the second session is refused with dovecot-pop3d\'s text', async (t) => {
  const { srv, pop3 } = await startPop3(t, { extra: 'protocol pop3 {\n  mail_max_userip_connections = 1\n}\n' });
  const user = 'limit@example.org';
  deliver(srv, user, ['Subject: x\n\nx\n']);
  const first = await Pop3Wire.connect(pop3);
  t.after(() => first.close());
  await first.reply(false);
  first.send(`USER ${user}\r\nPASS pass\r\n`);
  await first.reply(false);
  assert.equal(await first.reply(false), '+OK Logged in.\r\n');
  const second = await pop3Script(pop3, [`USER ${user}`, 'PASS pass', 'STAT']);
  assert.deepEqual(second.slice(1), ['+OK\r\n', '-ERR [IN-USE] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)\r\n', '<closed>']);
  first.send('QUIT\r\n');
  assert.equal(await first.reply(false), '+OK Logging out.\r\n');
  // the slot is free again once the first session ended
  for (const end = Date.now() + 20_000; ;) {
    const again = await pop3Script(pop3, [`USER ${user}`, 'PASS pass', 'QUIT']);
    if (again[2] === '+OK Logged in.\r\n') break;
    if (Date.now() > end) assert.fail(`still refused: ${again.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});
