/**
 * Several IMAP processes (issue #6 item 2; src/server/service-pool.ts):
 * `service imap-login { process_min_avail = 3 }` starts three workers under
 * the master, connections (IMAP and IMAPS) are spread over them, a change
 * made in one process wakes an IDLE in another, a worker killed with -9 is
 * replaced, and killing the master with -9 takes the workers with it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startSealmail } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { mailIds } from '../helpers/dovecot.js';
import { inCI } from '../helpers/tools.js';

const open = (port: number, tls: boolean) => ImapLine.open(port, tls);

const socketInodes = (pid: number) => readdirSync(`/proc/${pid}/fd`).map((f) => { try { return readlinkSync(`/proc/${pid}/fd/${f}`); } catch { return ''; } }).filter((l) => l.startsWith('socket:')).length;
const alive = (pid: number) => { try { return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return false; } };
const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]);
const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

async function workerPids(output: () => string, prev: number[] = []): Promise<number[]> {
  const end = Date.now() + 15_000;
  for (;;) {
    const all = [...output().matchAll(/imap: \d+ worker processes \(([\d ]+)\)/g)];
    const pids = all.length ? all[all.length - 1][1].split(' ').map(Number) : [];
    if (pids.length && pids.join() !== prev.join()) return pids;
    if (Date.now() > end) throw new Error(`no worker list in the log:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('three IMAP worker processes share the listeners and the mailbox, and are supervised', async (t) => {
  const srv = await startSealmail(t, { extraConf: 'service imap-login {\n  process_min_avail = 3\n}\n' });
  const pids = await workerPids(srv.output);
  assert.equal(pids.length, 3);
  for (const p of pids) {
    assert.equal(parentOf(p), srv.pid, `worker ${p} is a child of the master`);
    if (process.getuid?.() === 0) assert.equal(uidOf(p), mailIds().uid, `worker ${p} runs as the mail uid, never root`);
  }
  const before = pids.map(socketInodes);
  const conns: ImapLine[] = [];
  for (let i = 0; i < 6; i++) {
    const c = await open(i % 2 ? srv.imapsPort : srv.imapPort, i % 2 === 1);
    assert.match(await c.cmd('a', 'LOGIN alice pass'), /a OK /);
    conns.push(c);
  }
  const after = pids.map(socketInodes);
  // least-loaded hand-off: every worker got some of the six sessions
  for (let i = 0; i < 3; i++) assert.ok(after[i] > before[i], `worker ${pids[i]} serves a session (sockets ${before[i]} → ${after[i]})`);

  // IDLE in every session; an APPEND in one process wakes all of them
  for (const c of conns) { await c.cmd('s', 'SELECT INBOX'); c.sock.write('i IDLE\r\n'); await c.until(/\+ idling\r\n/, 'IDLE continuation'); }
  const writer = await open(srv.imapPort, false);
  await writer.cmd('w', 'LOGIN alice pass');
  const msg = 'Subject: across processes\r\n\r\nhello\r\n';
  assert.match(await writer.cmd('w2', `APPEND INBOX {${msg.length}+}\r\n${msg}`), /w2 OK \[APPENDUID \d+ 1\]/);
  for (const c of conns) await c.until(/\* 1 EXISTS\r\n/, 'EXISTS in IDLE');
  for (const c of conns) { c.sock.write('DONE\r\n'); await c.until(/i OK /, 'IDLE end'); }

  // a worker killed with -9 is replaced; the others' sessions live on
  process.kill(pids[0], 'SIGKILL');
  const next = await workerPids(srv.output, pids);
  assert.equal(next.length, 3);
  assert.ok(!next.includes(pids[0]) && next.includes(pids[1]) && next.includes(pids[2]), `replacement list ${next} after killing ${pids[0]}`);
  assert.match(srv.output(), new RegExp(`master: Error: service\\(imap\\): child ${pids[0]} killed with signal 9`));
  const fresh = await open(srv.imapsPort, true);
  assert.match(await fresh.cmd('f', 'LOGIN alice pass'), /f OK /);
  assert.match(await fresh.cmd('g', 'STATUS INBOX (MESSAGES)'), /\* STATUS INBOX \(MESSAGES 1\)/);
  let survivors = 0;
  for (const c of conns) if (!c.sock.destroyed && /n OK /.test(await c.cmd('n', 'NOOP').catch(() => ''))) survivors++;
  assert.ok(survivors >= 2 && survivors < 6, `sessions of the surviving workers still answer (${survivors} of 6)`);
  for (const c of [...conns, writer, fresh]) c.sock.destroy();

  // kill -9 of the master: the workers notice the closed channel and exit
  process.kill(srv.pid, 'SIGKILL');
  const end = Date.now() + 10_000;
  while (next.some(alive) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(next.filter(alive), [], 'no orphaned worker after the master died');
});

test('process_min_avail = 1 serves IMAP in one process of its own', async (t) => {
  const srv = await startSealmail(t, { extraConf: 'service imap-login {\n  process_min_avail = 1\n}\n' });
  const c = await open(srv.imapPort, false);
  assert.match(await c.cmd('a', 'LOGIN alice pass'), /a OK /);
  assert.match(srv.output(), /imap: 1 worker processes \(\d+\)/);
  c.sock.destroy();
});

test('ISPmail root-only files (dovecot-sql.conf.ext, the TLS key) still serve logins after root is dropped, in every worker', async (t) => {
  if (process.getuid?.() !== 0) {
    if (inCI) throw new Error('CI=true and not root: root-only files need a root start');
    t.skip('needs root (the CI runs as root)');
    return;
  }
  const { uid, gid } = mailIds();
  const srv = await startSealmail(t, {
    extraConf: 'service imap-login {\n  process_min_avail = 2\n}\n',
    passdb: 'passdb {\n  driver = sql\n  args = SQLEXT\n}\n',
    beforeStart: (dir) => {
      const db = join(dir, 'users.sqlite');
      const r = spawnSync('sqlite3', [db, "CREATE TABLE u (email TEXT, password TEXT); INSERT INTO u VALUES ('bob@example.org', '{PLAIN}secret');"], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      chownSync(db, uid, gid); // sql.js reads the database file itself at each lookup, as the mail uid
      writeFileSync(join(dir, 'dovecot-sql.conf.ext'), `driver = sqlite\nconnect = ${db}\npassword_query = SELECT email AS user, password FROM u WHERE email = '%u'\n`, { mode: 0o600 });
      chownSync(join(dir, 'dovecot-sql.conf.ext'), 0, 0); // ISPmail: chown root:root; chmod go=
    },
    rewriteConf: (text, dir) => text.replace('SQLEXT', join(dir, 'dovecot-sql.conf.ext')),
  });
  for (let i = 0; i < 4; i++) {
    const c = await open(i % 2 ? srv.imapsPort : srv.imapPort, i % 2 === 1);
    assert.match(await c.cmd('a', 'LOGIN bob@example.org secret'), /a OK /, `login ${i}`);
    assert.match(await c.cmd('b', 'STATUS INBOX (MESSAGES)'), /\* STATUS INBOX \(MESSAGES 0\)/);
    c.sock.destroy();
  }
  assert.doesNotMatch(srv.output(), /Permission denied/);
});
