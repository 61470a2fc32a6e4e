/**
 * CONDSTORE across IMAP worker processes: sessions of one user spread over
 * two workers (service imap-login { process_min_avail = 2 }) must see the
 * same MODSEQ for a message and the same HIGHESTMODSEQ, STOREs made in
 * different processes get distinct, growing modseqs, and a client that
 * reconnects (to whichever worker) never sees HIGHESTMODSEQ go down; and
 * a sealmail.modseq lost while running makes HIGHESTMODSEQ jump and QRESYNC
 * answer every missing UID as vanished (the expunge history is gone).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail } from '../../helpers/sealmail-server.js';

class Client {
  private buf = '';
  private constructor(readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => { this.buf += d; });
    sock.on('error', () => undefined);
  }
  static async open(port: number): Promise<Client> {
    const c = new Client(connect(port, '127.0.0.1'));
    await c.until(/^\* OK .*\r\n/);
    c.buf = '';
    return c;
  }
  private async until(re: RegExp): Promise<string> {
    const end = Date.now() + 15_000;
    while (!re.test(this.buf)) {
      if (Date.now() > end || this.sock.destroyed) throw new Error(`no ${re}; got ${JSON.stringify(this.buf.slice(-300))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const out = this.buf;
    this.buf = '';
    return out;
  }
  cmd(text: string): Promise<string> {
    this.sock.write(`t ${text}\r\n`);
    return this.until(/(^|\r\n)t (OK|NO|BAD)[^\r\n]*\r\n$/);
  }
}

const modseqs = (r: string) => [...r.matchAll(/\* (\d+) FETCH \(MODSEQ \((\d+)\)\)/g)].map((m) => Number(m[2]));
const highest = (r: string) => Number(/HIGHESTMODSEQ (\d+)/.exec(r)![1]);

test('CONDSTORE: one modseq per message and one HIGHESTMODSEQ across worker processes', async (t) => {
  const srv = await startSealmail(t, { extraConf: 'service imap-login {\n  process_min_avail = 2\n}\n' });
  const conns: Client[] = [];
  for (let i = 0; i < 4; i++) {
    const c = await Client.open(srv.imapPort);
    assert.match(await c.cmd('LOGIN alice pass'), /t OK /);
    conns.push(c);
  }
  for (let i = 0; i < 3; i++) assert.match(await conns[0].cmd(`APPEND INBOX {9+}\r\nSubject ${i}`), /t OK /);
  const h0 = highest(await conns[0].cmd('STATUS INBOX (HIGHESTMODSEQ)'));
  for (const c of conns) assert.match(await c.cmd('SELECT INBOX (CONDSTORE)'), /HIGHESTMODSEQ/);
  // a STORE in each session (the least-loaded hand-off puts them on both workers)
  const mine: number[] = [];
  for (let i = 0; i < conns.length; i++) {
    const r = await conns[i].cmd(`STORE ${(i % 3) + 1} FLAGS.SILENT (\\Flagged $k${i})`);
    mine.push(modseqs(r)[0]);
  }
  for (let i = 1; i < mine.length; i++) assert.ok(mine[i] > mine[i - 1], `STOREs in turn get growing modseqs whatever the process: ${mine}`);
  assert.ok(mine[0] > h0);
  // every session agrees on every message's modseq and on HIGHESTMODSEQ (asked again, bounded,
  // while a process has not seen the last change yet: no fixed pause)
  let views: string[] = [];
  for (const end = Date.now() + 10_000; ;) {
    views = [];
    for (const c of conns) {
      await c.cmd('NOOP');
      views.push(JSON.stringify([modseqs(await c.cmd('FETCH 1:* (MODSEQ)')), highest(await c.cmd('STATUS INBOX (HIGHESTMODSEQ)'))]));
    }
    if (new Set(views).size === 1 || Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(new Set(views).size, 1, `the same modseqs in every process: ${views.join(' | ')}`);
  const [, top] = JSON.parse(views[0]) as [number[], number];
  assert.equal(top, mine[mine.length - 1]);
  // reconnecting: never below what was seen
  for (let i = 0; i < 4; i++) {
    const c = await Client.open(srv.imapPort);
    await c.cmd('LOGIN alice pass');
    assert.ok(highest(await c.cmd('SELECT INBOX (CONDSTORE)')) >= top);
    c.sock.destroy();
  }
  for (const c of conns) c.sock.destroy();
});

test('QRESYNC after sealmail.modseq was lost: HIGHESTMODSEQ jumps, every missing UID is VANISHED (EARLIER)', async (t) => {
  const srv = await startSealmail(t, { extraConf: 'service imap-login {\n  process_min_avail = 1\n}\n' });
  const c = await Client.open(srv.imapPort);
  await c.cmd('LOGIN alice pass');
  for (let i = 0; i < 5; i++) await c.cmd(`APPEND INBOX {9+}\r\nSubject ${i}`);
  await c.cmd('ENABLE QRESYNC');
  const sel = await c.cmd('SELECT INBOX');
  const uidv = /UIDVALIDITY (\d+)/.exec(sel)![1];
  const h1 = highest(sel);
  await c.cmd('STORE 1 +FLAGS.SILENT (\\Deleted)');
  await c.cmd('EXPUNGE');
  await c.cmd('UID STORE 4 +FLAGS.SILENT (\\Deleted)');
  await c.cmd('EXPUNGE');
  const h2 = highest(await c.cmd('STATUS INBOX (HIGHESTMODSEQ)'));
  // what VANISHED knows while the file is there: only UID 4 went after h2's predecessor
  assert.match(await c.cmd(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${h2 - 1} VANISHED)`), /\* VANISHED \(EARLIER\) 4\r\n/);
  const file = join(srv.home('alice'), 'Maildir', 'sealmail.modseq');
  assert.ok(existsSync(file));
  unlinkSync(file);
  const t0 = Date.now();
  const r = await c.cmd('STORE 2 +FLAGS (\\Seen)');
  const after = Number(/MODSEQ \((\d+)\)/.exec(r)![1]);
  assert.ok(after > h2 && after >= t0, `the modseq jumped above anything handed out: ${h2} -> ${after}`);
  assert.ok(existsSync(file), 'rewritten');
  // the expunge history is lost: a client that last synced at h2 learns of every missing UID
  const q = await c.cmd(`SELECT INBOX (QRESYNC (${uidv} ${h2}))`);
  assert.match(q, /\* VANISHED \(EARLIER\) 1,4\r\n/);
  assert.match(q, /\* 2 FETCH \(UID 3 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)/);
  assert.ok(highest(q) >= after && h1 < h2);
  c.sock.destroy();
});
