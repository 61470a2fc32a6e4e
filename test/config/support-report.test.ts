/**
 * Nothing Sealmail skips is silent (config/support-report.ts): a plugin it
 * lacks, a setting with no effect and a protocol it does not serve are each
 * one warning naming file:line; a plugin or storage driver whose absence
 * would lose or hide mail stops the start (exit 89) before a listener
 * opens. `sealadm config -W` lists the same findings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAIL_PLUGINS } from '../../src/config/mail-plugin-support.js';
import { sealadmJs } from '../helpers/paths.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { tempDir } from '../helpers/tmp.js';

function findings(t: import('node:test').TestContext, text: string): { status: number | null; lines: string[]; conf: string } {
  const dir = tempDir(t, 'findings');
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, text);
  const r = spawnSync(process.execPath, [sealadmJs, 'config', '-W', '-c', conf], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, lines: r.stdout.split('\n').filter(Boolean), conf };
}

test('sealadm config -W: each plugin Sealmail lacks is named with file:line and what is lost; lazy_expunge is fatal', (t) => {
  const r = findings(t, 'mail_location = maildir:~/Maildir\nmail_plugins = quota mail_crypt\nprotocol imap {\n  mail_plugins = $mail_plugins imap_quota acl lazy_expunge\n}\nprotocol lmtp {\n  mail_plugins = $mail_plugins sieve trash fts frobnicate\n}\n');
  const c = r.conf;
  assert.equal(r.status, 89);
  assert.ok(r.lines.includes(`Warning: ${c} line 4: mail_plugins: acl is not supported by Sealmail: ${MAIL_PLUGINS.acl.note}`), r.lines.join('\n'));
  assert.ok(r.lines.includes(`Fatal: ${c} line 4: mail_plugins: lazy_expunge is not supported by Sealmail, which will not start with it: ${MAIL_PLUGINS.lazy_expunge.note}. Remove it from mail_plugins, or keep running Dovecot`), r.lines.join('\n'));
  assert.ok(r.lines.includes(`Warning: ${c} line 7: mail_plugins: trash is not supported by Sealmail: ${MAIL_PLUGINS.trash.note}`));
  assert.ok(r.lines.includes(`Warning: ${c} line 7: mail_plugins: fts is not supported by Sealmail: ${MAIL_PLUGINS.fts.note}`));
  assert.ok(r.lines.some((l) => l.startsWith(`Warning: ${c} line 7: mail_plugins: frobnicate is not supported by Sealmail: Dovecot 2.3 ships no such plugin`)));
  // supported plugins, repeated through $mail_plugins, are never mentioned
  assert.ok(!r.lines.some((l) => /: (quota|mail_crypt|imap_quota|sieve) is/.test(l)), r.lines.join('\n'));
  assert.equal(r.lines.length, 5, r.lines.join('\n'));
});

test('sealadm config -W: another storage driver is fatal, globally or in a namespace; unserved protocols and no-effect settings warn', (t) => {
  const r = findings(t, 'protocols = imap pop3 lmtp submission\nmail_location = mdbox:~/mdbox\nauth_ssl_username_from_cert = yes\nnamespace archive {\n  prefix = Archive/\n  location = sdbox:~/archive\n}\n');
  const c = r.conf;
  assert.equal(r.status, 89);
  assert.deepEqual(r.lines.sort(), [
    `Fatal: ${c} line 2: mail_location = mdbox:~/mdbox: Sealmail stores mail only in Maildir, not mdbox; it will not start on mail it cannot read`,
    'Fatal: namespace archive: location = sdbox:~/archive: Sealmail stores mail only in Maildir, not sdbox; it will not start on mail it cannot read',
    `Warning: ${c} line 1: protocols: Sealmail has no submission service; no listener opens for it`,
    `Warning: ${c} line 3: auth_ssl_username_from_cert: not supported by Sealmail yet, the setting has no effect (see dovecot-compat.md)`,
    'Warning: namespace configuration error: inbox=yes namespace missing: Dovecot refuses every login with this, and so does Sealmail',
  ].sort());
});

test('sealadm config -W: private namespaces (separator, prefix, several, LAYOUT=fs) say nothing; shared and public ones warn', (t) => {
  const plain = findings(t, 'mail_location = maildir:~/Maildir\nnamespace inbox {\n  inbox = yes\n  separator = /\n  prefix = INBOX/\n}\nnamespace shared {\n  type = shared\n  prefix = shared/%%u/\n}\nnamespace pub {\n  type = public\n  prefix = Public/\n  location = maildir:/srv/public\n}\nnamespace archive {\n  prefix = Old/\n  separator = /\n  location = maildir:~/old\n}\n');
  assert.equal(plain.status, 0, plain.lines.join('\n'));
  assert.deepEqual(plain.lines, [
    'Warning: namespace shared: type = shared is not supported by Sealmail: its mailboxes are not offered',
    'Warning: namespace pub: type = public is not supported by Sealmail: its mailboxes are not offered',
  ]);
  // LAYOUT=fs with its own separator "/" (unset or set), or with ".", is served as Dovecot serves it
  assert.deepEqual(findings(t, 'mail_location = maildir:~/Maildir:LAYOUT=fs\nnamespace inbox {\n  inbox = yes\n  separator = /\n}\n').lines, []);
  assert.deepEqual(findings(t, 'mail_location = maildir:~/Maildir:LAYOUT=fs\n').lines, []);
  assert.deepEqual(findings(t, 'mail_location = maildir:~/Maildir:LAYOUT=fs\nnamespace inbox {\n  inbox = yes\n  separator = .\n}\n').lines, []);
  // ISPmail's namespace (separator ".", no prefix) says nothing
  assert.deepEqual(findings(t, 'mail_location = maildir:~/Maildir\nnamespace inbox {\n  inbox = yes\n  separator = .\n}\n').lines, []);
  // a set Dovecot refuses every login with (namespaces_check) is said, with Dovecot's text
  assert.deepEqual(findings(t, 'mail_location = maildir:~/Maildir\nnamespace inbox {\n  inbox = yes\n  separator = /\n}\nnamespace archive {\n  prefix = Old/\n  location = maildir:~/old\n}\n').lines,
    ['Warning: namespace configuration error: list=yes requires prefix=Old/ to end with separator .: Dovecot refuses every login with this, and so does Sealmail']);
  assert.deepEqual(findings(t, 'mail_location = maildir:~/Maildir\nnamespace a {\n  inbox = yes\n}\nnamespace b {\n  inbox = yes\n  prefix = B.\n}\n').lines,
    ['Warning: namespace configuration error: There can be only one namespace with inbox=yes: Dovecot refuses every login with this, and so does Sealmail']);
  assert.deepEqual(findings(t, 'mail_location = maildir:~/Maildir\nnamespace a {\n  prefix = A.\n}\n').lines,
    ['Warning: namespace configuration error: inbox=yes namespace missing: Dovecot refuses every login with this, and so does Sealmail']);
});

test('the server says the same at start: warnings by name and it runs; with lazy_expunge it refuses before any listener', async (t) => {
  const srv = await startSealmail(t, { extraConf: 'mail_plugins = acl last_login\n' });
  assert.match(srv.output(), /dovecot\.conf line \d+: mail_plugins: acl is not supported by Sealmail: ACL files are not read/);
  assert.match(srv.output(), /dovecot\.conf line \d+: mail_plugins: last_login is not supported by Sealmail: the last-login dict is not updated/);
  await srv.stop();

  await assert.rejects(startSealmail(t, { extraConf: 'mail_plugins = lazy_expunge\n', startMs: 60_000 }), (e: Error) => {
    assert.match(e.message, /Fatal: .*dovecot\.conf line \d+: mail_plugins: lazy_expunge is not supported by Sealmail, which will not start with it/);
    assert.doesNotMatch(e.message, /listening on/);
    return true;
  });
});
