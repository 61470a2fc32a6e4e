/**
 * COMPRESS=DEFLATE (RFC 4978): the same lock-step script against the real
 * Dovecot 2.3 (imap_zlib) and Sealmail, the client side doing raw deflate
 * with node:zlib after the tagged OK; then Sealmail alone over IMAPS with
 * IDLE woken by another session and a multi-megabyte FETCH, and without
 * imap_zlib (no capability, Dovecot's unknown-command text).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { constants as zc, createDeflateRaw, createInflateRaw, type DeflateRaw } from 'node:zlib';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';

const ZLIB = 'protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n';

/** An IMAP client that waits for each tagged reply and can switch both directions to raw deflate. */
class Client {
  out = '';
  private deflate: DeflateRaw | null = null;
  private waiter: { re: RegExp; resolve: () => void } | null = null;
  private rawBytes = 0;

  constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => { this.rawBytes += d.length; if (!this.inflating) this.got(d); });
  }
  private inflating = false;

  static async open(sock: Socket): Promise<Client> {
    const c = new Client(sock);
    await c.until(/^\* (OK|PREAUTH) /m);
    return c;
  }

  get received(): number { return this.rawBytes; }

  private got(d: Buffer): void {
    this.out += d.toString('latin1');
    if (this.waiter && this.waiter.re.test(this.out)) { const w = this.waiter; this.waiter = null; w.resolve(); }
  }

  until(re: RegExp, ms = 15_000): Promise<void> {
    if (re.test(this.out)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiter = { re, resolve };
      setTimeout(() => reject(new Error(`timeout waiting for ${re}: ${this.out.slice(-300)}`)), ms).unref();
    });
  }

  send(text: string): void {
    const b = Buffer.from(text, 'latin1');
    if (this.deflate) { this.deflate.write(b); this.deflate.flush(zc.Z_SYNC_FLUSH); } else this.sock.write(b);
  }

  /** Send one command and wait for its tagged reply; returns the new part of the transcript. */
  async run(line: string, tag = line.split(' ')[0]): Promise<string> {
    const from = this.out.length;
    this.send(`${line}\r\n`);
    await this.until(new RegExp(`(^|\r\n)${tag} (OK|NO|BAD) [^\r\n]*\r\n$`));
    return this.out.slice(from);
  }

  /** From now on both directions are raw deflate (after COMPRESS DEFLATE's OK). */
  compress(): void {
    this.inflating = true;
    const inflate = createInflateRaw();
    this.sock.removeAllListeners('data');
    this.sock.on('data', (d: Buffer) => { this.rawBytes += d.length; inflate.write(d); });
    inflate.on('data', (d: Buffer) => this.got(d));
    this.deflate = createDeflateRaw();
    this.deflate.on('data', (d: Buffer) => this.sock.write(d));
  }
}

const MSG = 'From: ann@example.org\r\nTo: bob@example.org\r\nSubject: squeeze me\r\nDate: Tue, 3 Feb 2026 10:11:12 +0100\r\n\r\n' + 'the same line again and again\r\n'.repeat(200);

const PLAIN_PART = ['a1 COMPRESS FOO', 'a2 COMPRESS', 'a3 COMPRESS DEFLATE EXTRA', 'a4 COMPRESS "DEFLATE"'];
const COMPRESSED_PART = [
  'b1 COMPRESS DEFLATE',
  'b2 COMPRESS FOO',
  `b3 APPEND INBOX (\\Seen) "03-Feb-2026 10:11:12 +0100" {${MSG.length}+}\r\n${MSG}`,
  'b4 SELECT INBOX',
  'b5 FETCH 1 (FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])',
  'b6 FETCH 1 BODY.PEEK[]',
  'b7 NOOP',
  'b8 LOGOUT',
];

function normalise(t: string): string[] {
  return t.split('\r\n').filter((l) => l && !/^\* (OK|PREAUTH) \[CAPABILITY /.test(l) && !/^\* CAPABILITY /.test(l) && !/ OK \[CAPABILITY /.test(l))
    .map((l) => l.replace(/ \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\./, '.').replace(/\[UIDVALIDITY \d+\]/, '[UIDVALIDITY X]').replace(/\[APPENDUID \d+ /, '[APPENDUID X '));
}

async function script(port: number): Promise<{ lines: string[]; caps: string; received: number }> {
  const c = await Client.open(connect(port, '127.0.0.1'));
  const login = await c.run('L0 LOGIN bob@example.org pass');
  const caps = /\[CAPABILITY ([^\]]*)\]/.exec(login)![1];
  for (const l of PLAIN_PART) await c.run(l);
  await c.run(COMPRESSED_PART[0]);
  c.compress();
  for (const l of COMPRESSED_PART.slice(1)) await c.run(l);
  await c.until(/b8 OK Logout completed[^\r]*\r\n$/);
  await new Promise((r) => { c.sock.once('close', r); setTimeout(r, 5000).unref(); });
  return { lines: normalise(c.out), caps, received: c.received };
}

test('COMPRESS DEFLATE: Sealmail answers as Dovecot with imap_zlib does, before and after compression', async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${ZLIB}` });
  if (!dv) return;
  const srv = await startSealmail(t, { extraConf: ZLIB });
  const theirs = await script(port);
  const ours = await script(srv.imapPort);
  assert.ok(theirs.caps.endsWith('COMPRESS=DEFLATE'), theirs.caps);
  assert.match(ours.caps, / COMPRESS=DEFLATE( \S+)* APPENDLIMIT=\d+$/);
  // every extension Sealmail announces is one Dovecot announces, in Dovecot's order (besides
  // the deliberate additions beyond Dovecot 2.3, listed last in the CAPABILITY table or noted there)
  const dovecotCaps = theirs.caps.split(' ');
  const beyond = new Set(['IMAP4rev2', 'CREATE-SPECIAL-USE', 'UTF8=ACCEPT']);
  const announced = ours.caps.split(' ').filter((c) => !c.startsWith('APPENDLIMIT=') && !beyond.has(c));
  const at = announced.map((c) => dovecotCaps.indexOf(c));
  assert.ok(at.every((i, n) => i >= 0 && (n === 0 || i > at[n - 1])), `${ours.caps}\nvs Dovecot's\n${theirs.caps}`);
  assert.deepEqual(ours.lines, theirs.lines);
  assert.ok(ours.lines.some((l) => l.startsWith('b2 NO [COMPRESSIONACTIVE]')));
  // the body really travelled compressed (6 KiB of repeated lines)
  assert.ok(ours.received < MSG.length, `received ${ours.received} bytes`);
});

test('COMPRESS over IMAPS: IDLE is woken through the compressed stream, a 3 MiB FETCH arrives intact', async (t) => {
  const srv = await startSealmail(t, { extraConf: ZLIB });
  const big = 'Subject: big\r\n\r\n' + Array.from({ length: 60_000 }, (_, i) => `line ${i} ${'x'.repeat(i % 40)}\r\n`).join('');
  const c = await Client.open(tlsConnect({ port: srv.imapsPort, host: '127.0.0.1', rejectUnauthorized: false }));
  await c.run('L0 LOGIN bob pass');
  assert.match(await c.run('a1 COMPRESS DEFLATE'), /^a1 OK Begin compression/m);
  c.compress();
  c.send(`a2 APPEND INBOX {${big.length}+}\r\n`);
  assert.match(await c.run(big, 'a2'), /a2 OK \[APPENDUID \d+ 1\]/);
  await c.run('a3 SELECT INBOX');
  const f = await c.run('a4 FETCH 1 BODY.PEEK[]');
  const at = f.indexOf(`{${big.length}}\r\n`);
  assert.ok(at > 0, f.slice(0, 200));
  assert.equal(f.slice(at + `{${big.length}}\r\n`.length, at + `{${big.length}}\r\n`.length + big.length), big);
  assert.ok(c.received < big.length / 2, `received ${c.received} bytes for ${big.length}`);

  c.send('a5 IDLE\r\n');
  await c.until(/\+ idling\r\n$/);
  const other = await Client.open(connect(srv.imapPort, '127.0.0.1'));
  await other.run('L0 LOGIN bob pass');
  await other.run('o1 APPEND INBOX {12+}\r\nSubject: 2\r\n');
  await c.until(/\* 2 EXISTS\r\n/);
  c.send('DONE\r\n');
  await c.until(/a5 OK Idle completed[^\r]*\r\n$/);
  assert.match(await c.run('a6 LOGOUT'), /\* BYE Logging out\r\na6 OK/);
  other.sock.destroy();
});

test('without imap_zlib: no COMPRESS=DEFLATE and COMPRESS is an unknown command, as in Dovecot', async (t) => {
  const srv = await startSealmail(t);
  const c = await Client.open(connect(srv.imapPort, '127.0.0.1'));
  const login = await c.run('L0 LOGIN bob pass');
  assert.doesNotMatch(login, /COMPRESS/);
  assert.match(await c.run('a1 COMPRESS DEFLATE'), /^a1 BAD Error in IMAP command COMPRESS: Unknown command \(\d/m);
  assert.match(await c.run('a2 NOOP'), /^a2 OK NOOP completed/m);
  c.sock.destroy();
});
