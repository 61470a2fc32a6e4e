/**
 * BINARY and BODY sections read in two IMAP processes (src/server/service-pool.ts):
 * one session appends a multipart message and fetches its structure (which
 * fills the per-folder sealmail.cache), a session served by the other worker
 * process then fetches every section, and both get the same bytes — for a
 * plain and for a mail-crypt user (whose cache records are sealed). This is
 * the scenario of the "BINARY[2] came back empty in the second process"
 * report of the consistency tester, which turned out to be the tester's own
 * misjudgement (an empty BODY[2] of a single-part message whose APPEND reply
 * had not arrived yet, test/helpers/imap-consistency.ts): the servers agree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { startSealmail } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { CRYPT_CONF, CRYPT_PASSDB } from '../helpers/mail-crypt.js';

const socketInodes = (pid: number) => readdirSync(`/proc/${pid}/fd`).map((f) => { try { return readlinkSync(`/proc/${pid}/fd/${f}`); } catch { return ''; } }).filter((l) => l.startsWith('socket:')).length;

async function workerPids(output: () => string): Promise<number[]> {
  const end = Date.now() + 15_000;
  for (;;) {
    const all = [...output().matchAll(/imap: \d+ worker processes \(([\d ]+)\)/g)];
    if (all.length) return all[all.length - 1][1].split(' ').map(Number);
    if (Date.now() > end) throw new Error(`no worker list in the log:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const MSG = [
  'From: a@example.org', 'Subject: two processes', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '',
  'preamble', '--b1', 'Content-Type: text/plain', '', 'part one', '--b1',
  'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64', '',
  Buffer.from('\x00\x01binary part two\xff', 'latin1').toString('base64'), '--b1--', '',
].join('\r\n');

const ITEMS = '(BODYSTRUCTURE BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[2] BODY.PEEK[2.MIME])';

for (const [name, user, opts] of [
  ['plain user', 'alice', {}],
  ['mail-crypt user', 'carol@example.org', { passdb: CRYPT_PASSDB, crypt: true }],
] as const) {
  test(`FETCH BINARY[n] gives the same bytes in both IMAP processes (${name})`, async (t) => {
    const srv = await startSealmail(t, {
      ...('passdb' in opts ? { passdb: opts.passdb } : {}),
      extraConf: `service imap-login {\n  process_min_avail = 2\n}\n${'crypt' in opts ? CRYPT_CONF : ''}`,
    });
    const pids = await workerPids(srv.output);
    assert.equal(pids.length, 2);
    const before = pids.map(socketInodes);
    const a = await ImapLine.open(srv.imapPort);
    t.after(() => a.sock.destroy());
    assert.match(await a.cmd('a1', `LOGIN ${user} pass`), /a1 OK /);
    const b = await ImapLine.open(srv.imapPort);
    t.after(() => b.sock.destroy());
    assert.match(await b.cmd('b1', `LOGIN ${user} pass`), /b1 OK /);
    const after = pids.map(socketInodes);
    assert.ok(after[0] > before[0] && after[1] > before[1], 'the two sessions are served by different processes');

    assert.match(await a.cmd('a2', `APPEND INBOX {${MSG.length}+}\r\n${MSG}`), /a2 OK \[APPENDUID \d+ 1\]/);
    await a.cmd('a3', 'SELECT INBOX');
    const first = await a.cmd('a4', `FETCH 1 ${ITEMS}`);
    assert.match(first, /BINARY\[2\] ~\{18\}\r\n\x00\x01binary part two\xff/);
    await b.cmd('b2', 'SELECT INBOX');
    const second = await b.cmd('b3', `FETCH 1 ${ITEMS}`);
    const body = (s: string) => s.slice(s.indexOf('* 1 FETCH'), s.lastIndexOf('\r\n', s.lastIndexOf(' OK ')));
    assert.equal(body(second), body(first));
    // and again in the first process, now that the other one has written its cache records too
    assert.equal(body(await a.cmd('a5', `FETCH 1 ${ITEMS}`)), body(first));
  });
}
