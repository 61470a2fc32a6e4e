/**
 * Sieve enotify's mailto notifications and RFC 7352 duplicate tracking at
 * delivery. Notifications: the same script delivered by Pigeonhole (dovecot-lda
 * with a recording sendmail) and by Sealmail's LMTP (same recording sendmail)
 * give the same sendmail arguments, header fields in the same order with the
 * same values (but X-Sieve, Message-ID, Date) and the same body; through
 * `submission_host` a notification reaches an SMTP sink, and none is sent for an
 * auto-submitted message. Duplicates: two LMTP deliveries of one Message-ID,
 * the second filed as a duplicate, and the `~/.dovecot.lda-dupes` database
 * shared with Dovecot both ways (Pigeonhole sees Sealmail's marks and Sealmail
 * sees Pigeonhole's).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { mailIds, setupDovecot } from '../helpers/dovecot.js';
import { transcript } from '../helpers/line-transcript.js';
import { smtpSink } from '../helpers/smtp-sink.js';

const LDA = '/usr/lib/dovecot/dovecot-lda';
const NOTIFY = 'require ["enotify"];\n'
  + 'notify :importance "1" :message "You have mail" "mailto:alice@example.net%2Cbob@example.net?cc=carol@example.net&X-Foo=bar&body=Look%20now";\n'
  + 'notify :from "Me <me@example.org>" "mailto:dave@example.net";\n';
const DUPLICATE = 'require ["duplicate","fileinto","mailbox"];\nif duplicate { fileinto :create "Dups"; }\n';

const message = (id: string, extra = '') => `From: Alice <alice@example.net>\r\nTo: john@example.org\r\nSubject: hi there\r\nMessage-ID: <${id}@example.net>\r\n${extra}\r\nhello\r\n`;

async function deliver(port: number, id: string, extra = ''): Promise<string[]> {
  const r = await transcript({ port }, [
    { send: 'LHLO test\r\n' }, { send: 'MAIL FROM:<alice@example.net>\r\n' }, { send: 'RCPT TO:<john@example.org>\r\n' }, { send: 'DATA\r\n' },
    { send: message(id, extra) + '.\r\n' }, { send: 'QUIT\r\n' },
  ]);
  assert.ok(r.some((l) => /^S: 250 2\.0\.0 <john@example\.org> \S+ Saved$/.test(l)), r.join('\n'));
  return r;
}

async function sealmail(t: import('node:test').TestContext, lmtpPort: number, conf: string, script: string) {
  const { uid, gid } = mailIds();
  return startSealmail(t, {
    extraConf: `protocols = imap lmtp\n${conf}\nprotocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\nservice lmtp {\n  inet_listener lmtp {\n    port = ${lmtpPort}\n  }\n}\n`,
    beforeStart: (dir) => {
      const home = join(dir, 'home', 'john@example.org');
      mkdirSync(home, { recursive: true });
      writeFileSync(join(home, '.dovecot.sieve'), script);
      if (process.getuid?.() === 0) for (const p of [home, join(home, '.dovecot.sieve')]) chownSync(p, uid, gid);
    },
  });
}

/** A sendmail that records its arguments and the message in `dir` (one pair of files per call). */
function recordingSendmail(t: import('node:test').TestContext, name: string): { path: string; sent(): { args: string[]; msg: string }[] } {
  const dir = join(process.env.TMPDIR ?? '/tmp', `sieve-notify-${name}-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'sendmail');
  writeFileSync(path, `#!/bin/sh\nn=$(date +%s%N)\nprintf '%s\\n' "$@" > ${dir}/out.$n.args\ncat > ${dir}/out.$n.msg\n`, { mode: 0o755 });
  return {
    path,
    sent: () => readdirSync(dir).filter((f) => f.endsWith('.args')).map((f) => ({
      args: readFileSync(join(dir, f), 'utf8').trim().split('\n'), msg: readFileSync(join(dir, f.replace(/\.args$/, '.msg')), 'utf8'),
    })).sort((a, b) => a.args.join(' ').localeCompare(b.args.join(' '))),
  };
}

function ldaMissing(t: import('node:test').TestContext): boolean {
  if (existsSync(LDA)) return false;
  if (process.env.CI === 'true') throw new Error('dovecot-lda missing');
  t.skip('dovecot-lda missing');
  return true;
}

/** Header fields as [name, value] in order (unfolded), and the body. */
function fields(m: string): { head: [string, string][]; body: string } {
  const i = m.indexOf('\r\n\r\n');
  const head = m.slice(0, i).replace(/\r\n[ \t]/g, ' ').split('\r\n').map((l): [string, string] => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]);
  return { head, body: m.slice(i + 4) };
}

test('notify mailto: the notifications Pigeonhole sends (dovecot-lda), field for field', async (t) => {
  if (ldaMissing(t)) return;
  const theirs = recordingSendmail(t, 'lda');
  const dv = setupDovecot(t, { start: true, protocols: 'lmtp', extraConf: `sendmail_path = ${theirs.path}\nprotocol lda {\n  mail_plugins = sieve\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n` });
  if (!dv) return;
  const h = dv.home('john@example.org');
  mkdirSync(h, { recursive: true });
  writeFileSync(join(h, '.dovecot.sieve'), NOTIFY);
  spawnSync('chown', ['-R', `${dv.uid}:${dv.gid}`, h]);
  const r = spawnSync(LDA, ['-c', dv.conf, '-d', 'john@example.org', '-f', 'alice@example.net'], { input: message('n1'), encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr + dv.log());

  const ours = recordingSendmail(t, 'ours');
  const lmtpPort = await freePort();
  const srv = await sealmail(t, lmtpPort, `sendmail_path = ${ours.path}`, NOTIFY);
  await deliver(lmtpPort, 'n1');

  const o = theirs.sent(), u = ours.sent();
  assert.equal(o.length, 2, dv.log());
  assert.equal(u.length, 2, srv.output());
  for (let i = 0; i < o.length; i++) {
    assert.deepEqual(u[i].args, o[i].args);
    const of = fields(o[i].msg), uf = fields(u[i].msg);
    assert.deepEqual(uf.head.map(([n]) => n), of.head.map(([n]) => n), `header fields of\n${o[i].msg}\n---\n${u[i].msg}`);
    const comparable = (hd: [string, string][]) => hd.filter(([n]) => !['X-Sieve', 'Message-ID', 'Date'].includes(n));
    assert.deepEqual(comparable(uf.head), comparable(of.head));
    assert.equal(uf.body, of.body);
  }
  assert.match(srv.output(), /notify action: sent mail notification to <alice@example\.net>, <bob@example\.net>, <carol@example\.net>/);
});

test('notify mailto through submission_host reaches an SMTP sink; none for an auto-submitted message', async (t) => {
  const sink = await smtpSink(t);
  const lmtpPort = await freePort();
  const srv = await sealmail(t, lmtpPort, `submission_host = 127.0.0.1:${sink.port}`, 'require ["enotify"];\nnotify :importance "3" "mailto:alice@example.net?subject=New%20mail";\n');
  await deliver(lmtpPort, 's1');
  await sink.waitFor(1);
  assert.equal(sink.got.length, 1, srv.output());
  assert.equal(sink.got[0].from, 'postmaster@example.org');
  assert.deepEqual(sink.got[0].rcpts, ['alice@example.net']);
  for (const f of ['Subject: New mail', 'From: Postmaster <postmaster@example.org>', 'To: alice@example.net', 'Auto-Submitted: auto-notified; owner-email="john@example.org"', 'X-Priority: 5 (Lowest)', 'Importance: Low'])
    assert.ok(sink.got[0].data.includes(`\r\n${f}\r\n`), `${f} in\n${sink.got[0].data}`);
  assert.match(sink.got[0].data, /\r\n\r\nNotification of new message\.\r\n$/);
  // the message is kept (notify is no delivery)
  assert.equal(readdirSync(join(srv.home('john@example.org'), 'Maildir', 'new')).length, 1);

  await deliver(lmtpPort, 's2', 'Auto-Submitted: auto-replied\r\n');
  assert.match(srv.output(), /not sending notification for auto-submitted message from <alice@example\.net>/);
  assert.equal(sink.got.length, 1);
});

test('duplicate over two LMTP deliveries; the lda-dupes database is the one Pigeonhole reads and writes', async (t) => {
  const lmtpPort = await freePort();
  const srv = await sealmail(t, lmtpPort, '', DUPLICATE);
  const home = srv.home('john@example.org');
  const count = (box: string) => { const d = join(home, 'Maildir', box, 'new'); return existsSync(d) ? readdirSync(d).length : 0; };
  await deliver(lmtpPort, 'd1');
  assert.deepEqual([count(''), count('.Dups')], [1, 0], srv.output());
  assert.ok(existsSync(join(home, '.dovecot.lda-dupes')), 'the duplicate id is recorded where Dovecot keeps it');
  await deliver(lmtpPort, 'd1');
  assert.deepEqual([count(''), count('.Dups')], [1, 1], srv.output());
  await deliver(lmtpPort, 'd2');
  assert.deepEqual([count(''), count('.Dups')], [2, 1], srv.output());

  // Pigeonhole on the same home: d1 is a duplicate to it too, d3 is new and recorded for Sealmail to see
  if (ldaMissing(t)) return;
  const { uid, gid } = mailIds();
  const dv = setupDovecot(t, {
    start: true, protocols: 'lmtp', mailLocation: 'maildir:~/Maildir',
    userdb: `userdb {\n  driver = static\n  args = uid=${uid} gid=${gid} home=${home}\n}`,
    extraConf: 'protocol lda {\n  mail_plugins = sieve\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n',
  });
  if (!dv) return;
  const lda = (id: string) => {
    const r = spawnSync(LDA, ['-c', dv.conf, '-d', 'john@example.org', '-f', 'alice@example.net'], { input: message(id), encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr + dv.log());
  };
  lda('d1');
  assert.deepEqual([count(''), count('.Dups')], [2, 2], dv.log());
  lda('d3');
  assert.deepEqual([count(''), count('.Dups')], [3, 2], dv.log());
  await deliver(lmtpPort, 'd3');
  assert.deepEqual([count(''), count('.Dups')], [3, 3], srv.output());
});
