/**
 * The LMTP proxy (`lmtp_proxy = yes`, src/lmtp/lmtp-proxy.ts) on loopback
 * addresses: a Sealmail LMTP on 127.0.0.1 looks each recipient up in its
 * passwd-file passdb and sends `dv@` to a real Dovecot 2.3.19 lmtp on
 * 127.0.0.2 (which trusts the proxy and so advertises XCLIENT) and `sm@` to a
 * Sealmail LMTP on 127.0.0.3, while `local@` (no passdb row) is stored by the
 * proxy itself. One transaction to the three: three 250s in RCPT order, the
 * message (300 kB, past the spool's memory part, with lines starting with a
 * dot) stored byte-identical below each server's own added headers. A backend
 * that is down: that recipient gets Dovecot's `451 4.4.0 Proxy failed
 * (connect, session=…)` at RCPT, the others are stored. `lmtp_proxy = no`:
 * everyone is local.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { LmtpWire, until } from '../helpers/lmtp-wire.js';
import { tempDir } from '../helpers/tmp.js';
import { dotStuffed, relayedReply } from '../../src/lmtp/lmtp-proxy.js';

/** The message as sent (CRLF, dot-stuffed on the wire) and as it is stored (LF). */
function message(tag: string): { wire: Buffer; stored: Buffer } {
  const line = 'The quick brown fox jumps over the lazy dog 0123456789 abcdefghij.\n';
  const text = `From: sender@example.net\nSubject: ${tag}\nMessage-ID: <${tag}@proxy.test>\n\n.a line starting with a dot\n${line.repeat(4500)}..two dots\nEND ${tag}\n`;
  const wire = text.replace(/\n/g, '\r\n').replace(/^\./gm, '..');
  return { wire: Buffer.from(wire), stored: Buffer.from(text) };
}

/** Every file stored in a user's INBOX (Maildir new/ and cur/). */
function stored(home: string): Buffer[] {
  const out: Buffer[] = [];
  for (const sub of ['new', 'cur']) {
    const d = join(home, 'Maildir', sub);
    if (existsSync(d)) for (const f of readdirSync(d)) out.push(readFileSync(join(d, f)));
  }
  return out;
}

/** The stored copy from the message's first header on (each server prepends its own trace headers). */
function body(copy: Buffer): Buffer {
  const at = copy.indexOf('From: sender@example.net\n');
  assert.ok(at >= 0, 'the message is in the stored copy');
  return copy.subarray(at);
}

/** One transaction: the replies to each RCPT, and the replies after the data. */
async function transaction(port: number, rcpts: string[], wire: Buffer): Promise<{ rcpt: string[]; data: string[] }> {
  const w = new LmtpWire(port);
  try {
    await w.hello();
    await w.send('MAIL FROM:<sender@example.net>\r\n', /^250 .*\r\n/m);
    const rcpt: string[] = [];
    for (const r of rcpts) rcpt.push((await w.send(`RCPT TO:<${r}>\r\n`, /^\d{3} .*\r\n/m)).trimEnd());
    const accepted = rcpt.filter((r) => r.startsWith('250')).length;
    await w.send('DATA\r\n', /^354 .*\r\n/m);
    w.text = '';
    w.sock.write(Buffer.concat([wire, Buffer.from('.\r\n')]));
    await until('a reply per accepted recipient', () => (w.text.match(/^\d{3} .*\r\n/gm)?.length ?? 0) >= accepted, 60_000);
    return { rcpt, data: w.text.trimEnd().split('\r\n') };
  } finally { w.sock.destroy(); }
}

/** A Sealmail LMTP on `address`:`port` with `conf` added. */
function sealmailLmtp(t: TestContext, address: string, port: number, conf: string, passdb?: string, rootMaster = false): Promise<SealmailServer> {
  return startSealmail(t, {
    ...(passdb ? { passdb } : {}),
    extraConf: `protocols = imap lmtp\n${conf}service lmtp {\n  inet_listener lmtp {\n    port = ${port}\n    address = ${address}\n  }\n}\n`,
    rewriteConf: (text) => {
      const t2 = text.replace('listen = 127.0.0.1', `listen = ${address}`);
      // the root master mode: no mail_uid, LMTP in its own processes as default_internal_user
      return rootMaster ? t2.replace(/^mail_[ug]id = .*\n/gm, '') : t2;
    },
  });
}

const rootSkip = process.getuid?.() === 0 ? false : 'the root master mode needs root';

for (const rootMaster of [false, true]) {
  test(`LMTP proxy${rootMaster ? ' (root master mode)' : ''}: recipients routed by the passdb to a Dovecot and a Sealmail backend, replies in RCPT order`, { timeout: 240_000, skip: rootMaster && rootSkip }, (t) => scenario(t, rootMaster));
}

async function scenario(t: TestContext, rootMaster: boolean): Promise<void> {
  const dvPort = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    extraConf: `login_trusted_networks = 127.0.0.0/8\nservice lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.2\n    port = ${dvPort}\n  }\n}\n`,
  });
  if (!dv) return;
  const smPort = await freePort();
  const sm = await sealmailLmtp(t, '127.0.0.3', smPort, '');
  const downPort = await freePort(); // nothing listens there

  const proxyPort = await freePort();
  const files = tempDir(t, 'lmtp-proxy-passwd');
  chmodSync(files, 0o755);
  const passwd = join(files, 'passwd');
  writeFileSync(passwd, [
    `dv@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.2 port=${dvPort}`,
    `sm@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.3 port=${smPort}`,
    `down@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.2 port=${downPort}`,
    `loop@example.org:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=${proxyPort}`,
    `nohost@example.org:{PLAIN}pass::::::proxy=y`,
    '',
  ].join('\n'), { mode: 0o644 });
  const passdb = `passdb {\n  driver = passwd-file\n  args = ${passwd}\n}\n`;
  const proxy = await sealmailLmtp(t, '127.0.0.1', proxyPort, 'lmtp_proxy = yes\n', passdb, rootMaster);

  // three recipients: local, Dovecot backend, Sealmail backend
  const m1 = message('three');
  const r1 = await transaction(proxyPort, ['local@example.org', 'dv@example.org', 'sm@example.org'], m1.wire);
  assert.deepEqual(r1.rcpt, ['250 2.1.5 OK', '250 2.1.5 OK', '250 2.1.5 OK']);
  assert.equal(r1.data.length, 3);
  assert.match(r1.data[0], /^250 2\.0\.0 <local@example\.org> \S+ Saved$/);
  const sid = /> (\S+) Saved$/.exec(r1.data[0])![1];
  // Dovecot's own `<session> Saved` for a backend's success, with the client's address put in (smtp_server_recipient_reply_forward)
  assert.deepEqual(r1.data.slice(1), [`250 2.0.0 <dv@example.org> ${sid}:R2 Saved`, `250 2.0.0 <sm@example.org> ${sid}:R3 Saved`]);
  const copies = [stored(proxy.home('local@example.org')), stored(dv.home('dv@example.org')), stored(sm.home('sm@example.org'))];
  for (const c of copies) assert.equal(c.length, 1);
  for (const c of copies) assert.ok(body(c[0]).equals(m1.stored), 'the stored message is the one sent');
  // the proxied copies carry the proxy's Received header below the backend's own
  for (const c of copies.slice(1)) assert.ok(c[0].includes(`\tid ${sid}\n`), 'the proxy\'s Received header');
  // the Dovecot backend was told the session (XCLIENT SESSION=<sid>:P1)
  await until('the Dovecot backend log', () => dv.log().includes(`<${sid}:P1>`) || dv.log().includes(`${sid}:P1`));

  // a backend that is down: that recipient's 451 at RCPT, the others stored
  const m2 = message('down');
  const r2 = await transaction(proxyPort, ['local@example.org', 'down@example.org', 'sm@example.org'], m2.wire);
  assert.equal(r2.rcpt[0], '250 2.1.5 OK');
  assert.match(r2.rcpt[1], /^451 4\.4\.0 Proxy failed \(connect, session=\S+:R2\)$/);
  assert.equal(r2.rcpt[2], '250 2.1.5 OK');
  assert.equal(r2.data.length, 2);
  assert.match(r2.data[0], /^250 2\.0\.0 <local@example\.org> \S+ Saved$/);
  assert.match(r2.data[1], /^250 2\.0\.0 <sm@example\.org> \S+:R3 Saved$/);
  assert.equal(stored(proxy.home('local@example.org')).length, 2);
  assert.equal(stored(sm.home('sm@example.org')).length, 2);

  // a route back to this very listener is refused; `proxy` without `host` is delivered locally (Dovecot: "proxy: host not given")
  const m4 = message('loop');
  const r4 = await transaction(proxyPort, ['loop@example.org', 'nohost@example.org'], m4.wire);
  assert.deepEqual(r4.rcpt, ['554 5.4.6 Proxying loops to itself', '250 2.1.5 OK']);
  assert.match(r4.data[0], /^250 2\.0\.0 <nohost@example\.org> \S+ Saved$/);
  assert.ok(body(stored(proxy.home('nohost@example.org'))[0]).equals(m4.stored));
  await until('the log lines', () => /Proxying to <loop@example\.org> loops to itself/.test(proxy.output()) && /proxy: host not given/.test(proxy.output()));
  if (rootMaster) return;

  // lmtp_proxy = no: the same passdb, everyone delivered locally
  const plainPort = await freePort();
  const plain = await sealmailLmtp(t, '127.0.0.1', plainPort, '', passdb);
  const m3 = message('local');
  const r3 = await transaction(plainPort, ['local@example.org', 'dv@example.org', 'sm@example.org'], m3.wire);
  assert.equal(r3.data.length, 3);
  for (const [i, u] of ['local', 'dv', 'sm'].entries()) {
    assert.match(r3.data[i], new RegExp(`^250 2\\.0\\.0 <${u}@example\\.org> \\S+ Saved$`));
    const c = stored(plain.home(`${u}@example.org`));
    assert.equal(c.length, 1);
    assert.ok(body(c[0]).equals(m3.stored));
  }
  assert.equal(stored(dv.home('dv@example.org')).length, 1, 'nothing more reached the Dovecot backend');
}

test('LMTP proxy: the data as the backend gets it, and the replies relayed as lmtp-proxy.c words them', async () => {
  const out: Buffer[] = [];
  for await (const b of dotStuffed([Buffer.from('a\n.b\n'), Buffer.from('.'), Buffer.from('c\r\nd')])) out.push(b);
  assert.equal(Buffer.concat(out).toString(), 'a\r\n..b\r\n..c\r\nd\r\n');
  assert.equal(relayedReply({ code: 250, enh: null, text: 'OK' }, 's:R2', 'u@x', true), '250 2.1.0 OK');
  assert.equal(relayedReply({ code: 550, enh: '5.1.1', text: '<v@x> User doesn\'t exist: v@x' }, 's:R2', 'u@x', true), '550 5.1.1 <u@x> User doesn\'t exist: v@x');
  assert.equal(relayedReply({ code: 250, enh: '2.0.0', text: '<v@x> t Saved' }, 's:R2', 'u@x', false), '250 2.0.0 <u@x> s:R2 Saved');
  assert.equal(relayedReply({ code: 452, enh: null, text: 'full' }, 's', 'u@x', false), '452 4.0.0 <u@x> full');
  assert.equal(relayedReply({ error: 'timed out' }, 's:R3', 'u@x', false), '451 4.4.0 Proxy failed (timed out, session=s:R3)');
});
