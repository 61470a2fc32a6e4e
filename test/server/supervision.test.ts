/**
 * Dovecot's process model, over real sockets against a real Sealmail
 * (src/server/service-pool.ts, service-processes.ts, auth/sql/sqlite.ts):
 *
 * - connection attempts made during start-up (a connect loop running from
 *   before the port opens) all get a greeting: a connection waits for an
 *   IMAP process instead of being closed because none is ready yet;
 * - 50 logins in the first second after start, SQLite passdb and userdb
 *   (the README's embedded default shape), all succeed;
 * - kill -9 of each kind of service process (IMAP, ManageSieve, LMTP,
 *   auth) while clients work: the master logs it as Dovecot's does, the
 *   others keep serving, the killed one is replaced and serves again, and
 *   no LMTP message acknowledged with 250 is lost.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { freePort } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';
import { lmtpDeliver, markerMessage, markerOf } from '../helpers/lmtp-kill.js';
import { until } from '../helpers/lmtp-wire.js';

/** The latest `SERVICE: N worker processes (pids)` line of each service. */
function pidsOf(out: string, service: string): number[] {
  const all = [...out.matchAll(new RegExp(`: ${service}: \\d+ worker processes \\(([\\d ]+)\\)`, 'g'))];
  return all.length ? all[all.length - 1][1].split(' ').map(Number) : [];
}

/** Connect once; 'refused' before the port is open, else whether a greeting came before the close. */
function attempt(port: number): Promise<'refused' | 'greeted' | 'closed'> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let connected = false;
    let buf = '';
    const done = (r: 'refused' | 'greeted' | 'closed') => { s.destroy(); resolve(r); };
    const timer = setTimeout(() => done('closed'), 30_000);
    s.on('connect', () => { connected = true; });
    s.on('data', (d) => { buf += d.toString('latin1'); if (/^\* OK .*\r\n/.test(buf)) { clearTimeout(timer); done('greeted'); } });
    s.on('error', () => undefined);
    s.on('close', () => { clearTimeout(timer); done(connected ? 'closed' : 'refused'); });
  });
}

test('connection attempts made during start-up all get a greeting', async (t) => {
  const srv = await startSealmail(t, { extraConf: 'service imap-login {\n  process_min_avail = 2\n}\n', ready: () => true });
  const results: { r: 'greeted' | 'closed'; beforeReady: boolean }[] = [];
  const ready = () => pidsOf(srv.output(), 'imap').length > 0;
  const loop = async () => {
    // from before the port opens until a few connections after the IMAP processes are ready
    while (results.filter((x) => !x.beforeReady).length < 20) {
      const beforeReady = !ready();
      const r = await attempt(srv.imapPort);
      if (r !== 'refused') results.push({ r, beforeReady });
      if (/Fatal/.test(srv.output())) throw new Error(srv.output());
    }
  };
  await Promise.all([loop(), loop(), loop(), loop()]);
  const early = results.filter((x) => x.beforeReady);
  assert.ok(early.length > 0, `some connections were accepted before the IMAP processes were ready (${results.length} in all)`);
  const closed = results.filter((x) => x.r === 'closed');
  assert.equal(closed.length, 0, `${closed.length} of ${results.length} connections (${early.length} made during start-up) closed without a greeting`);
});

test('50 logins in the first second after start, SQLite passdb and userdb, all succeed', async (t) => {
  const { uid, gid } = mailIds();
  let db = '';
  const srv = await startSealmail(t, {
    extraConf: 'service imap-login {\n  process_min_avail = 2\n}\n',
    passdb: 'passdb {\n  driver = sql\n  args = SQLEXT\n}\nuserdb {\n  driver = sql\n  args = SQLEXT\n}\n',
    beforeStart: (dir) => {
      db = join(dir, 'mailserver.sqlite');
      const users = Array.from({ length: 50 }, (_, i) => `('u${i}@example.org', '{PLAIN}pw${i}')`).join(',');
      const r = spawnSync('sqlite3', [db, `CREATE TABLE virtual_users (email TEXT, password TEXT); INSERT INTO virtual_users VALUES ${users};`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      if (process.getuid?.() === 0) chownSync(db, uid, gid);
      writeFileSync(join(dir, 'dovecot-sql.conf.ext'), `driver = sqlite\nconnect = ${db}\npassword_query = SELECT email AS user, password FROM virtual_users WHERE email = '%u'\nuser_query = SELECT email AS user, ${uid} AS uid, ${gid} AS gid, '${dir}/home/%u' AS home FROM virtual_users WHERE email = '%u'\n`);
    },
    // the static userdb of the helper's template goes: SQL answers both
    rewriteConf: (text, dir) => text.replaceAll('SQLEXT', join(dir, 'dovecot-sql.conf.ext')).replace(/userdb \{\n  driver = static\n[^}]*\}\n/, ''),
  });
  const replies = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    const c = await ImapLine.open(i % 2 ? srv.imapsPort : srv.imapPort, i % 2 === 1);
    try { return await c.cmd('a', `LOGIN u${i}@example.org pw${i}`); } finally { c.close(); }
  }));
  const failed = replies.map((r, i) => [i, r] as const).filter(([, r]) => !/a OK /.test(r));
  assert.deepEqual(failed, [], `${failed.length} of 50 logins failed`);
  assert.doesNotMatch(srv.output(), /Database closed|UNAVAILABLE/);
});

/** A ManageSieve session logged in as alice (RFC 5804: responses end in OK "…"). */
async function sieveLogin(port: number): Promise<ImapLine> {
  const c = new ImapLine(net.connect(port, '127.0.0.1'));
  await c.until(/(^|\r\n)OK "[^"\r\n]*"\r\n$/, 'ManageSieve greeting');
  c.sock.write(`AUTHENTICATE "PLAIN" "${Buffer.from('\0alice\0pass').toString('base64')}"\r\n`);
  assert.match(await c.until(/(^|\r\n)(OK|NO|BYE)[^\r\n]*\r\n$/, 'AUTHENTICATE reply'), /OK "Logged in\."/);
  return c;
}
const sieveNoop = async (c: ImapLine) => { c.sock.write('NOOP\r\n'); return c.until(/(^|\r\n)(OK|NO|BYE)[^\r\n]*\r\n$/, 'NOOP reply'); };

/** The auth client protocol's handshake on the Postfix socket: the server's VERSION … DONE. */
function authHandshake(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    let buf = '';
    const done = (ok: boolean) => { clearTimeout(timer); s.destroy(); resolve(ok); };
    const timer = setTimeout(() => done(false), 20_000);
    s.on('connect', () => s.write('VERSION\t1\t2\nCPID\t4242\n'));
    s.on('data', (d) => { buf += d; if (/^VERSION\t1\t\d+\n[\s\S]*\nDONE\n/.test(buf)) done(true); });
    s.on('error', () => done(false));
    s.on('close', () => done(false));
  });
}

/** Every acknowledged marker is in alice's Maildir exactly once. */
function assertDelivered(srv: SealmailServer, acked: Set<string>): void {
  const md = join(srv.home('alice'), 'Maildir');
  const seen = new Map<string, number>();
  for (const sub of ['new', 'cur']) {
    if (!existsSync(join(md, sub))) continue;
    for (const f of readdirSync(join(md, sub))) {
      const m = markerOf(readFileSync(join(md, sub, f), 'latin1'));
      if (m) seen.set(m, (seen.get(m) ?? 0) + 1);
    }
  }
  const lost = [...acked].filter((m) => !seen.has(m));
  const twice = [...seen].filter(([, n]) => n > 1).map(([m]) => m);
  assert.deepEqual(lost, [], `${lost.length} of ${acked.size} acknowledged messages lost`);
  assert.deepEqual(twice, [], 'stored twice');
}

test('kill -9 of each kind of service process: the others keep serving, the killed one is replaced, no acknowledged message is lost', async (t) => {
  const lmtpPort = await freePort();
  const sievePort = await freePort();
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap lmtp sieve
service imap-login {
  process_min_avail = 2
}
service lmtp {
  inet_listener lmtp {
    port = ${lmtpPort}
  }
}
service managesieve-login {
  inet_listener sieve {
    port = ${sievePort}
  }
}
service auth {
  unix_listener auth-client-test {
    mode = 0666
  }
}
`,
    ready: (out) => ['imap', 'managesieve', 'lmtp', 'auth'].every((s) => pidsOf(out, s).length > 0),
  });
  const authPath = join(srv.dir, 'base', 'auth-client-test');

  // work going on all the time: two LMTP clients delivering numbered messages
  const acked = new Set<string>();
  let stop = false;
  let seq = 0;
  const deliverer = async (n: number) => {
    while (!stop) {
      const marker = `sup-${n}-${++seq}`;
      if (await lmtpDeliver(lmtpPort, 'alice', markerMessage(marker, 2000))) acked.add(marker);
      else await new Promise((r) => setTimeout(r, 10));
    }
  };
  const running = [deliverer(1), deliverer(2)];
  t.after(() => { stop = true; });

  let imap = await ImapLine.open(srv.imapPort, false);
  assert.match(await imap.cmd('a', 'LOGIN alice pass'), /a OK /);
  let sieve = await sieveLogin(sievePort);

  for (const kind of ['imap', 'managesieve', 'lmtp', 'auth']) {
    const before = pidsOf(srv.output(), kind);
    const victim = kind === 'imap' ? before[before.length - 1] : before[0];
    process.kill(victim, 'SIGKILL');
    // a client arriving while the process is being replaced waits for the new one
    const during = kind === 'managesieve' ? sieveLogin(sievePort).then((c) => { c.close(); return true; })
      : kind === 'lmtp' ? lmtpDeliver(lmtpPort, 'alice', markerMessage(`during-${kind}`, 500)).then((ok) => { if (ok) acked.add(`during-${kind}`); return ok; })
      : kind === 'auth' ? authHandshake(authPath)
      : ImapLine.open(srv.imapPort, false).then((c) => { c.close(); return true; });
    await until(`${kind} replaced`, () => srv.output().includes(`master: Error: service(${kind}): child ${victim} killed with signal 9`) && pidsOf(srv.output(), kind).length === before.length && !pidsOf(srv.output(), kind).includes(victim), 30_000);

    assert.ok(await during, `a ${kind} client that came during the replacement is served`);
    // the others' sessions live on (IMAP's: unless its own process was the victim)
    if (kind !== 'managesieve') assert.match(await sieveNoop(sieve), /OK/, `ManageSieve session after killing ${kind}`);
    const imapAlive = !imap.sock.destroyed && /n OK /.test(await imap.cmd('n', 'NOOP').catch(() => ''));
    if (kind !== 'imap') assert.ok(imapAlive, `IMAP session after killing ${kind}`);
    // every service serves new clients, the replaced one too
    const fresh = await ImapLine.open(srv.imapsPort, true);
    assert.match(await fresh.cmd('f', 'LOGIN alice pass'), /f OK /, `IMAP login after killing ${kind}`);
    fresh.close();
    if (kind === 'imap' && !imapAlive) { imap.close(); imap = await ImapLine.open(srv.imapPort, false); assert.match(await imap.cmd('a', 'LOGIN alice pass'), /a OK /); }
    if (kind === 'managesieve') { sieve.close(); sieve = await sieveLogin(sievePort); }
    assert.match(await sieveNoop(await sieveLogin(sievePort)), /OK/, `ManageSieve login after killing ${kind}`);
    const marker = `after-${kind}`;
    assert.ok(await lmtpDeliver(lmtpPort, 'alice', markerMessage(marker, 500)), `LMTP delivery after killing ${kind}`);
    acked.add(marker);
    assert.ok(await authHandshake(authPath), `auth socket after killing ${kind}`);
  }
  stop = true;
  await Promise.all(running);
  imap.close();
  sieve.close();
  assert.ok(acked.size > 4, `deliveries went on (${acked.size} acknowledged)`);
  assertDelivered(srv, acked);
});

test('the auth penalty is one for all processes: an IMAP failure delays the next ManageSieve login, in a process started after it', async (t) => {
  const sievePort = await freePort();
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap sieve\nservice imap-login {\n  process_min_avail = 2\n}\nservice managesieve-login {\n  inet_listener sieve {\n    port = ${sievePort}\n  }\n}\n`,
    ready: (out) => pidsOf(out, 'imap').length > 0 && pidsOf(out, 'managesieve').length > 0,
  });
  const c = await ImapLine.open(srv.imapPort, false);
  assert.match(await c.cmd('a', 'LOGIN alice wrong'), /a NO /);
  c.close();
  // the ManageSieve process that will serve the next login starts after the failure
  const [victim] = pidsOf(srv.output(), 'managesieve');
  process.kill(victim, 'SIGKILL');
  await until('managesieve replaced', () => { const now = pidsOf(srv.output(), 'managesieve'); return now.length === 1 && now[0] !== victim; }, 30_000);
  const t0 = Date.now();
  (await sieveLogin(sievePort)).close();
  // Dovecot's anvil penalty after one failure: 2 s before the next attempt is looked at (a lower bound: load only adds)
  assert.ok(Date.now() - t0 >= 1900, `the login waited the penalty (${Date.now() - t0} ms)`);
});
