/**
 * Many sessions on one mailbox at once (issue #6 item 7): four clients
 * append, flag, expunge and fetch concurrently over TCP. Every untagged
 * EXPUNGE must name a sequence number the client has, EXISTS never goes
 * below what the client was told, no UID is handed out twice, no flag
 * change and no appended message is lost.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startSealmail } from '../../helpers/sealmail-server.js';

class Client {
  private buf = '';
  private waiting: { tag: string; resolve: (lines: string[]) => void } | null = null;
  private lines: string[] = [];
  private n = 0;
  count = 0;
  readonly errors: string[] = [];
  constructor(private readonly sock: Socket, readonly name: string) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        this.track(line);
        this.lines.push(line);
        if (this.waiting && line.startsWith(this.waiting.tag + ' ')) {
          const w = this.waiting;
          this.waiting = null;
          w.resolve(this.lines.splice(0));
        }
      }
    });
  }
  private track(line: string): void {
    let m = /^\* (\d+) EXPUNGE$/.exec(line);
    if (m) {
      const n = Number(m[1]);
      if (n < 1 || n > this.count) this.errors.push(`${this.name}: EXPUNGE ${n} with only ${this.count} messages known`);
      this.count--;
      return;
    }
    m = /^\* (\d+) EXISTS$/.exec(line);
    if (m) {
      const n = Number(m[1]);
      if (n < this.count) this.errors.push(`${this.name}: EXISTS went down from ${this.count} to ${n} without EXPUNGE`);
      this.count = n;
    }
  }
  cmd(text: string): Promise<string[]> {
    const tag = `${this.name}${++this.n}`;
    return new Promise((resolve) => { this.waiting = { tag, resolve }; this.sock.write(`${tag} ${text}\r\n`); });
  }
  close(): void { this.sock.destroy(); }
}

async function open(port: number, name: string): Promise<Client> {
  const s = connect(port, '127.0.0.1');
  await new Promise<void>((r) => s.once('data', () => r()));
  const c = new Client(s, name);
  await c.cmd('LOGIN team@example.org pass');
  await c.cmd('SELECT INBOX');
  return c;
}

test('four sessions appending, flagging, expunging and fetching on one mailbox stay consistent', async (t) => {
  const srv = await startSealmail(t);
  const names = ['A', 'B', 'C', 'D'];
  const clients = await Promise.all(names.map((n) => open(srv.imapPort, n)));
  const expunged = new Set<string>();
  const diag: string[] = [];
  t.after(() => { if (diag.length) console.log(diag.join('\n')); });
  const flagged = new Set<string>();
  await Promise.all(clients.map(async (c) => {
    for (let i = 0; i < 12; i++) {
      const subj = `${c.name}-${i}`;
      const msg = `Subject: ${subj}\r\n\r\nfrom ${c.name}\r\n`;
      const r = await c.cmd(`APPEND INBOX {${msg.length}+}\r\n${msg}`);
      assert.match(r.at(-1)!, /OK \[APPENDUID \d+ \d+\]/);
      await c.cmd('NOOP');
      const sr = await c.cmd(`UID SEARCH SUBJECT ${subj}`);
      const found = (sr.find((l) => l.startsWith('* SEARCH')) ?? assert.fail(`UID SEARCH failed: ${sr.join(' | ')}`)).split(' ').slice(2);
      assert.equal(found.length, 1, `${subj} found once`);
      if (i % 3 === 0) {
        const st = await c.cmd(`UID STORE ${found[0]} +FLAGS.SILENT (\\Deleted)`);
        const ex = await c.cmd(`UID EXPUNGE ${found[0]}`);
        if (!ex.some((l) => / EXPUNGE$/.test(l))) diag.push(`${subj} uid ${found[0]}: ${st.join(' | ')} || ${ex.join(' | ')}`);
        expunged.add(subj);
      } else {
        await c.cmd(`UID STORE ${found[0]} +FLAGS (\\Flagged $${c.name})`);
        flagged.add(subj);
      }
      await c.cmd('FETCH 1:* (UID FLAGS)');
    }
  }));
  const check = await open(srv.imapPort, 'Z');
  const lines = await check.cmd('FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
  const uids: number[] = [];
  const subjects = new Map<string, string>();
  for (let i = 0; i < lines.length; i++) {
    const m = /^\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)/.exec(lines[i]);
    if (!m) continue;
    uids.push(Number(m[1]));
    const subj = /Subject: (\S+)/.exec(lines[i + 1] ?? '')?.[1];
    if (subj) subjects.set(subj, m[2]);
  }
  assert.equal(new Set(uids).size, uids.length, 'no UID twice');
  for (const s of expunged) assert.ok(!subjects.has(s), `${s} was expunged`);
  for (const s of flagged) {
    assert.ok(subjects.has(s), `${s} is there`);
    assert.match(subjects.get(s)!, /\\Flagged/, `${s} kept its flag`);
    assert.match(subjects.get(s)!, new RegExp(`\\$${s[0]}`), `${s} kept its keyword`);
  }
  assert.equal(subjects.size, 4 * 12 - expunged.size);
  for (const c of clients) c.close();
  check.close();
  const errors = clients.flatMap((c) => c.errors);
  assert.deepEqual(errors, []);
});
