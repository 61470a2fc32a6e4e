/**
 * Dovecot's connection limits and pipelining in the root-master mode (root,
 * no mail_uid: src/server/root-master.ts), where a login is routed from an
 * imap-login process to a mail process of the user's uid: the master counts
 * every connection as Dovecot's master and anvil do, with Dovecot 2.3.19's
 * texts (the scenarios of test/helpers/limit-scenarios.ts, shared with the
 * mail_uid mode) — mail_max_userip_connections (`NO [LIMIT] …`, per user,
 * IP and protocol; other users go on logging in), the login services'
 * client_limit × process_limit (the oldest pre-login connection dropped
 * with `Connection queue full`, across login processes), service imap /
 * managesieve client_limit × process_limit over the mail processes, the
 * login processes kept (process_min_avail); and
 * commands pipelined behind LOGIN / AUTHENTICATE reach the mail process and
 * are answered in order (imap-login passes its input buffer with the fd).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Wire } from '../helpers/line-wire.js';
import { IMAP_GREETING, SESSION_CAP_CONF, SIEVE_GREETING, USERIP_CONF, imapLogin, limitServer, loginCapConf, loginCapDropsOldest, plain, sessionCap, sieveLogin, userIpLimit, type LimitServer } from '../helpers/limit-scenarios.js';

const root = process.getuid?.() === 0;
const skip = root ? false : 'needs root (the mode is root without mail_uid)';

/** A root-master server (see limitServer) whose users may keep Sieve scripts. */
const server = (t: TestContext, conf: string): Promise<LimitServer> => limitServer(t, `plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n${conf}`, { rootMaster: true });

test('root master: mail_max_userip_connections refuses the user over the limit with Dovecot\'s text; other users still log in; a freed slot is reusable', { skip }, async (t) => {
  await userIpLimit(t, await server(t, USERIP_CONF));
});

test('root master: the login services\' client_limit × process_limit drop the oldest pre-login connection, across login processes', { skip }, async (t) => {
  await loginCapDropsOldest(t, await server(t, loginCapConf(2)));
});

test('root master: service imap / managesieve client_limit × process_limit cap the logged-in sessions of all mail processes', { skip }, async (t) => {
  await sessionCap(t, await server(t, SESSION_CAP_CONF));
});

test('root master: the login processes kept are the larger process_min_avail of imap-login and managesieve-login', { skip }, async (t) => {
  const { srv, sieve } = await server(t, 'service imap-login {\n  process_min_avail = 1\n}\nservice managesieve-login {\n  process_min_avail = 3\n}\n');
  const logins = spawnSync('pgrep', ['-P', String(srv.pid), '-f', '--', '--login-process'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  assert.equal(logins.length, 3, `login processes: ${logins.join(' ')}`);
  // a login of each protocol in each of them (round robin)
  for (let i = 0; i < 3; i++) { await imapLogin(t, srv.imapPort, `i${i}@example.org`); await sieveLogin(t, sieve, `s${i}@example.org`); }
});

for (const tls of [false, true]) {
  test(`root master: IMAP commands pipelined behind LOGIN / AUTHENTICATE in one write are answered in order by the mail process${tls ? ' (imaps)' : ''}`, { skip }, async (t) => {
    const { srv } = await server(t, '');
    const port = tls ? srv.imapsPort : srv.imapPort;
    const w = await Wire.open(t, port, IMAP_GREETING, tls);
    w.sock.write('a LOGIN u@example.org pass\r\nb SELECT INBOX\r\nc NOOP\r\n');
    const out = await w.until(/^c OK [^\r]*\r\n/m, 'the three replies');
    assert.match(out, /^a OK \[CAPABILITY IMAP4rev1 [^\]]*\] Logged in\r\n(?:\* [^\r]*\r\n)*b OK \[READ-WRITE\] Select completed[^\r]*\r\nc OK NOOP completed[^\r]*\r\n$/, out);
    // SASL-IR, then an APPEND with its literal and a STATUS behind it
    const v = await Wire.open(t, port, IMAP_GREETING, tls);
    v.sock.write(`a AUTHENTICATE PLAIN ${plain('v@example.org')}\r\nb APPEND INBOX {5+}\r\nhello\r\nc STATUS INBOX (MESSAGES)\r\n`);
    assert.match(await v.until(/^c OK [^\r]*\r\n/m, 'AUTHENTICATE, APPEND, STATUS'), /^a OK [^\r]*Logged in\r\nb OK \[APPENDUID \d+ 1\] Append completed[^\r]*\r\n\* STATUS INBOX \(MESSAGES 1\)\r\nc OK /m);
    // more behind the LOGIN than the login process keeps at once (a 3 MB APPEND): the rest waits in the socket, nothing is lost
    const big = Buffer.alloc(3 * 1024 * 1024, 'x');
    const z = await Wire.open(t, port, IMAP_GREETING, tls);
    z.sock.write(Buffer.concat([Buffer.from(`a LOGIN z@example.org pass\r\nb APPEND INBOX {${big.length}+}\r\n`), big, Buffer.from('\r\nc STATUS INBOX (MESSAGES SIZE)\r\n')]));
    assert.match(await z.until(/^c OK [^\r]*\r\n/m, 'LOGIN, a 3 MB APPEND, STATUS', 60_000), /^a OK [^\r]*Logged in\r\nb OK \[APPENDUID \d+ 1\] Append completed[^\r]*\r\n\* STATUS INBOX \(MESSAGES 1 SIZE 3145728\)\r\nc OK /m);
    // a LOGIN whose user name is a literal: what follows its last line is passed on
    const x = await Wire.open(t, port, IMAP_GREETING, tls);
    x.sock.write('a LOGIN {13}\r\n');
    await x.until(/^\+ OK\r\n/m, 'literal continuation');
    x.sock.write('x@example.org pass\r\nb NOOP\r\n');
    assert.match(await x.until(/^b OK [^\r]*\r\n/m, 'LOGIN with a literal, NOOP'), /^a OK [^\r]*Logged in\r\nb OK NOOP completed/m);
    // the SASL response on a line of its own, commands behind it in the same write
    const y = await Wire.open(t, port, IMAP_GREETING, tls);
    y.sock.write('a AUTHENTICATE PLAIN\r\n');
    await y.until(/^\+ \r\n/m, 'SASL continuation');
    y.sock.write(`${plain('y@example.org')}\r\nb NOOP\r\nc LOGOUT\r\n`);
    assert.match(await y.until(/^c OK [^\r]*\r\n/m, 'SASL response, NOOP, LOGOUT'), /^a OK [^\r]*Logged in\r\nb OK NOOP completed[^\r]*\r\n\* BYE Logging out\r\nc OK Logout completed/m);
  });
}

test('root master: ManageSieve commands pipelined behind AUTHENTICATE in one write are answered in order by the mail process', { skip }, async (t) => {
  const { sieve } = await server(t, '');
  const w = await Wire.open(t, sieve, SIEVE_GREETING);
  const script = 'keep;\r\n';
  w.sock.write(`AUTHENTICATE "PLAIN" "${plain('u@example.org')}"\r\nPUTSCRIPT "s" {${script.length}+}\r\n${script}\r\nLISTSCRIPTS\r\nNOOP "done"\r\n`);
  const out = await w.until(/^OK \(TAG "done"\) [^\r]*\r\n/m, 'the four replies');
  assert.equal(out, 'OK "Logged in."\r\nOK "PUTSCRIPT completed."\r\n"s"\r\nOK "Listscripts completed."\r\nOK (TAG "done") "Done"\r\n');
  // the SASL response on a line of its own, commands behind it in the same write
  const v = await Wire.open(t, sieve, SIEVE_GREETING);
  v.send('AUTHENTICATE "PLAIN"');
  await v.until(/^""\r\n/m, 'SASL continuation');
  v.sock.write(`"${plain('v@example.org')}"\r\nNOOP "x"\r\nLOGOUT\r\n`);
  assert.match(await v.until(/^OK "Logout completed\."\r\n/m, 'SASL response, NOOP, LOGOUT'), /^OK "Logged in\."\r\nOK \(TAG "x"\) "Done"\r\nOK "Logout completed\."\r\n$/);
});
