/**
 * Log differential: the same sessions driven through a private real Dovecot
 * 2.3.19 and through Sealmail on the same settings (log_path to a file,
 * auth_verbose = yes), and the log lines of interest compared in order after
 * masking what differs by nature (timestamps, pids, session ids, seconds,
 * ports): imap-login / pop3-login / managesieve-login `Login:` and
 * `Disconnected: … (auth failed, N attempts in S secs): user=<…>, …` lines
 * (login_log_format_elements), the mail processes' session-end lines
 * (imap_logout_format, pop3_logout_format), auth's `Password mismatch`, and
 * LMTP's `saved mail to INBOX` (deliver_log_format, here with more of its
 * variables than the default).
 *
 * Then fail2ban's stock Debian filter (filter.d/dovecot.conf, through
 * fail2ban-regex) must match Sealmail's log exactly as many times as
 * Dovecot's (IMAP, POP3, ManageSieve, and SMTP AUTH through the auth socket): an admin's jail bans the same clients after the same failures.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { Wire } from '../helpers/line-wire.js';
import { LmtpWire, until } from '../helpers/lmtp-wire.js';
import { requireTool, run } from '../helpers/tools.js';
import { openAuthClient } from '../helpers/auth-client-wire.js';

const FILTER = '/etc/fail2ban/filter.d/dovecot.conf';

const COMMON = `disable_plaintext_auth = no
auth_verbose = yes
auth_failure_delay = 0
login_greeting = Log test ready.
log_timestamp = "%b %d %H:%M:%S "
deliver_log_format = msgid=%m from=<%f> subject=%s envelope=<%e> size=%p/%w: %$
`;

/** The listeners, and the auth-client socket Postfix's SMTP AUTH uses (base_dir/auth-client). */
interface Ports { imap: number; pop3: number; sieve: number; lmtp: number; authSocket: string }

const listeners = (p: Ports, withImap: boolean) => `${withImap ? `service imap-login {
  inet_listener imap {
    port = ${p.imap}
  }
}
` : ''}service pop3-login {
  inet_listener pop3 {
    port = ${p.pop3}
  }
}
service managesieve-login {
  inet_listener sieve {
    port = ${p.sieve}
  }
}
service lmtp {
  inet_listener lmtp {
    port = ${p.lmtp}
    address = 127.0.0.1
  }
}
`;

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

/** What the client side saw: the bytes of the IMAP session after the greeting (imap_logout_format's out=). */
interface Seen { imapOut: number }

/** One scenario: the client side, and the log line that ends it (the last of its connections). */
interface Scenario { name: string; last: RegExp; run(t: TestContext, p: Ports, seen: Seen): Promise<void> }

const SCENARIOS: Scenario[] = [
  { name: 'imap login and logout', last: /^imap\(good@example\.org\).*Disconnected: Logged out/, async run(t, p, got) {
    const w = await Wire.open(t, p.imap, /^\* OK .*\r\n/m);
    w.sock.on('data', (d: string) => { got.imapOut += Buffer.byteLength(d, 'latin1'); });
    w.send('a LOGIN good@example.org pass');
    await w.until(/^a OK /m, 'login');
    w.send('b SELECT INBOX');
    await w.until(/^b OK /m, 'select');
    w.send('c LOGOUT');
    await w.gone('logout');
  } },
  { name: 'imap two wrong passwords, then logout', last: /^imap-login: .*Disconnected: Aborted login by logging out \(auth failed, 2 attempts/, async run(t, p) {
    const w = await Wire.open(t, p.imap, /^\* OK .*\r\n/m);
    w.send('a LOGIN bad@example.org wrong');
    await w.until(/^a NO /m, 'first failure');
    w.send(`b AUTHENTICATE PLAIN ${plain('bad@example.org', 'wrong2')}`);
    await w.until(/^b NO /m, 'second failure');
    w.send('c LOGOUT');
    await w.gone('logout');
  } },
  { name: 'imap wrong password, then the client closes', last: /^imap-login: .*Disconnected: Connection closed \(auth failed, 1 attempts/, async run(t, p) {
    const w = await Wire.open(t, p.imap, /^\* OK .*\r\n/m);
    w.send('a LOGIN bad@example.org wrong');
    await w.until(/^a NO /m, 'failure');
    w.sock.end();
    await w.gone('close');
  } },
  { name: 'imap logout without logging in', last: /^imap-login: .*no auth attempts/, async run(t, p) {
    const w = await Wire.open(t, p.imap, /^\* OK .*\r\n/m);
    w.send('a LOGOUT');
    await w.gone('logout');
  } },
  { name: 'pop3 login and quit', last: /^pop3\(good@example\.org\).*Disconnected: Logged out/, async run(t, p) {
    const w = await Wire.open(t, p.pop3, /^\+OK .*\r\n/m);
    w.send('USER good@example.org');
    await w.until(/^\+OK/m, 'user');
    w.send('PASS pass');
    await w.until(/^\+OK Logged in/m, 'pass');
    w.send('STAT');
    await w.until(/^\+OK/m, 'stat');
    w.send('QUIT');
    await w.gone('quit');
  } },
  { name: 'pop3 wrong password, then quit', last: /^pop3-login: .*auth failed/, async run(t, p) {
    const w = await Wire.open(t, p.pop3, /^\+OK .*\r\n/m);
    w.send('USER bad@example.org');
    await w.until(/^\+OK/m, 'user');
    w.send('PASS wrong');
    await w.until(/^-ERR/m, 'pass');
    w.send('QUIT');
    await w.gone('quit');
  } },
  { name: 'managesieve login and logout', last: /^managesieve\(good@example\.org\).*Logged out/, async run(t, p) {
    const w = await Wire.open(t, p.sieve, /^OK ".*"\r\n/m);
    w.send(`AUTHENTICATE "PLAIN" "${plain('good@example.org', 'pass')}"`);
    await w.until(/^OK/m, 'login');
    w.send('LOGOUT');
    await w.gone('logout');
  } },
  { name: 'managesieve wrong password, then logout', last: /^managesieve-login: .*auth failed/, async run(t, p) {
    const w = await Wire.open(t, p.sieve, /^OK ".*"\r\n/m);
    w.send(`AUTHENTICATE "PLAIN" "${plain('bad@example.org', 'wrong')}"`);
    await w.until(/^NO/m, 'failure');
    w.send('LOGOUT');
    await w.gone('logout');
  } },
  { name: 'smtp auth with a wrong password, over the auth socket', last: /^auth: .*Password mismatch/, async run(t, p) {
    // Postfix's side of the auth-client protocol: handshake, one AUTH PLAIN, its FAIL
    const a = await openAuthClient(t, p.authSocket);
    assert.match(await a.auth('1', `PLAIN\tservice=smtp\tnologin\trip=127.0.0.1\tlip=127.0.0.1\tresp=${plain('bad@example.org', 'wrong')}`), /^FAIL\t1\t/);
    a.close();
  } },
  { name: 'lmtp delivery', last: /^lmtp\(\d+\): Info: Disconnect from/, async run(t, p) {
    const w = new LmtpWire(p.lmtp);
    t.after(() => w.sock.destroy());
    await w.expect(/^220 .*\r\n/m);
    await w.send('LHLO client.example\r\n', /^250 .*\r\n/m);
    await w.send('MAIL FROM:<sender@example.org>\r\n', /^250 .*\r\n/m);
    await w.send('RCPT TO:<good@example.org>\r\n', /^250 .*\r\n/m);
    await w.send('DATA\r\n', /^354 .*\r\n/m);
    await w.send('Message-ID: <log-diff-1@example.org>\r\nFrom: Sender Name <sender@example.org>\r\nSubject: hi\r\n there\r\n\r\nbody\r\n.\r\n', /^250 .*\r\n/m);
    await w.send('QUIT\r\n', /^221 .*\r\n/m);
    await until('lmtp closed', () => w.closed);
  } },
];

/** Lines of the protocols', login processes' and auth's, without the timestamp; debug lines dropped. */
function linesOfInterest(log: string): string[] {
  return log.split('\n')
    .map((l) => l.replace(/^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d /, ''))
    .filter((l) => /^(imap|pop3|managesieve|lmtp|auth)(-login)?[:(]/.test(l) && !/: Debug: /.test(l));
}

/** What differs by nature between two runs: pids, session ids, seconds, ports, byte counts of greetings. */
function mask(line: string): string {
  return line
    .replace(/<\d+>/g, '<PID>')
    .replace(/^lmtp\(\d+\)/, 'lmtp(PID)')
    .replace(/mpid=\d+/g, 'mpid=PID')
    .replace(/<[A-Za-z0-9+/]{16}(?:[A-Za-z0-9+/]{6})?>/g, '<SESSION>')
    // the bytes of the responses: their capability lists differ (checked against what the client got instead)
    .replace(/^(imap\(.*) out=\d+/, '$1 out=N')
    // the sizes of the delivered message: its Received header is the server's (checked against the stored file instead)
    .replace(/ size=\d+\/\d+: /, ' size=P/V: ')
    .replace(/\b\d+ secs\b/g, 'N secs');
}

/** Runs every scenario on one server; per scenario, its log lines of interest (waited for, bounded). */
async function driveAll(t: TestContext, p: Ports, logText: () => string, seen: Seen): Promise<string[][]> {
  const out: string[][] = [];
  for (const s of SCENARIOS) {
    const before = linesOfInterest(logText()).length;
    await s.run(t, p, seen);
    await until(`${s.name}: its last log line ${s.last}`, () => linesOfInterest(logText()).slice(before).some((l) => s.last.test(l)));
    out.push([s.name, ...linesOfInterest(logText()).slice(before)]);
  }
  return out;
}

/** fail2ban-regex's count of lines the filter matched in a log file. */
function fail2banMatches(tool: string, logFile: string): number {
  const out = run(tool, [logFile, FILTER]);
  const m = /^Lines: \d+ lines, \d+ ignored, (\d+) matched/m.exec(out);
  if (!m) throw new Error(`fail2ban-regex said:\n${out}`);
  return Number(m[1]);
}

test('log lines as Dovecot 2.3.19 logs them, and fail2ban matches them as often', async (t) => {
  const dp: Ports = { imap: await freePort(), pop3: await freePort(), sieve: await freePort(), lmtp: await freePort(), authSocket: '' };
  const dv = setupDovecot(t, { start: true, protocols: 'imap pop3 sieve lmtp', extraConf: COMMON + listeners(dp, true) });
  if (!dv) return;
  dp.authSocket = join(dv.dir, 'base', 'auth-client');
  const theirSeen: Seen = { imapOut: 0 };
  const theirs = await driveAll(t, dp, () => dv.log(), theirSeen);
  const logFiles: string[] = [];
  // mail_uid set: login and session in one process per service; as root without it: Dovecot's
  // process model (login processes hand the session to a mail process, auth in its own process)
  for (const mode of process.getuid?.() === 0 ? ['mail_uid', 'root master'] : ['mail_uid']) {
    const sp: Ports = { imap: 0, pop3: await freePort(), sieve: await freePort(), lmtp: await freePort(), authSocket: '' };
    const seal = await startSealmail(t, {
      extraConf: COMMON + listeners(sp, false),
      rewriteConf: (text, dir) => {
        const conf = text.replace('protocols = imap\n', `protocols = imap pop3 sieve lmtp\nlog_path = ${dir}/sealmail.log\n`);
        return mode === 'mail_uid' ? conf : conf.replace(/^mail_[ug]id = .*\n/gm, '');
      },
      ready: (_out, dir) => existsSync(join(dir, 'sealmail.log')) && readFileSync(join(dir, 'sealmail.log'), 'utf8').includes(`:${sp.lmtp}`),
    });
    sp.imap = seal.imapPort;
    sp.authSocket = join(seal.dir, 'base', 'auth-client');
    const sealLogFile = join(seal.dir, 'sealmail.log');
    logFiles.push(sealLogFile);
    const ourSeen: Seen = { imapOut: 0 };
    const ours = await driveAll(t, sp, () => (existsSync(sealLogFile) ? readFileSync(sealLogFile, 'utf8') : ''), ourSeen);
    assert.deepEqual(ours.map((s) => s.map(mask)), theirs.map((s) => s.map(mask)), mode);
    assert.match(ours[0].join('\n'), new RegExp(` out=${ourSeen.imapOut} `), `${mode}: out= is what the client got after the greeting`);
    // deliver_log_format's %p / %w: the stored file's size, and with CRLF line ends
    const newDir = join(seal.home('good@example.org'), 'Maildir', 'new');
    const stored = readFileSync(join(newDir, readdirSync(newDir)[0]));
    const lfs = stored.toString('latin1').split('\n').length - 1;
    assert.match(ours[9].join('\n'), new RegExp(` size=${stored.length}/${stored.length + lfs}: saved mail to INBOX`), `${mode}: %p/%w`);
    await seal.stop();
  }
  assert.match(theirs[0].join('\n'), new RegExp(` out=${theirSeen.imapOut} `), 'Dovecot: out= is what the client got after the greeting');

  // fail2ban's stock filter bans on Sealmail's lines exactly as on Dovecot's
  const tool = requireTool(t, 'fail2ban-regex');
  if (!tool) return;
  if (!existsSync(FILTER)) assert.fail(`${FILTER} is missing (apt-get install fail2ban)`);
  const theirCount = fail2banMatches(tool, join(dv.dir, 'dovecot.log'));
  assert.equal(theirCount, 10, 'Dovecot: two IMAP mismatches + their disconnect, one + its disconnect, POP3 and ManageSieve one + disconnect each, SMTP AUTH\'s mismatch');
  for (const f of logFiles) assert.equal(fail2banMatches(tool, f), theirCount, f);
});
