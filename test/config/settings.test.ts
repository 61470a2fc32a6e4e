/**
 * The typed view (filters applied as Dovecot applies them, defaults, list
 * sections, -o overrides), the .conf.ext parser, and start-up errors for
 * `<file` values compared with the real Dovecot's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseExtText, checkKnownKeys } from '../../src/config/index.js';
import { expandBraces } from '../../src/config/include.js';
import { normalizeValue, parseSize, parseTime } from '../../src/config/values.js';
import { tempDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';

const TREE = `
mail_plugins = quota
auth_mechanisms = plain
protocol imap {
  mail_plugins = $mail_plugins imap_quota
}
protocol !lmtp {
  mail_max_userip_connections = 7
}
remote 10.0.0.0/8 {
  mail_max_userip_connections = 5
  protocol imap {
    mail_max_userip_connections = 3
  }
}
local_name *.example.org {
  ssl_cert = </dev/null
}
service imap-login {
  inet_listener imap {
    port = 10143
  }
}
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    mode = 0600
    user = postfix
  }
}
passdb {
  driver = sql
  args = /etc/dovecot/dovecot-sql.conf.ext
}
userdb {
  driver = static
  args = uid=vmail gid=vmail home=/var/vmail/%d/%n
}
namespace inbox {
  inbox = yes
  separator = .
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
}
plugin {
  quota = maildir:User quota
}
`;

test('effective values per filter context, Dovecot defaults, list sections', async (t) => {
  const dir = tempDir(t, 'settings');
  const path = join(dir, 'dovecot.conf');
  writeFileSync(path, TREE);
  const c = await loadConfig(path, { readValueFiles: true });
  assert.equal(c.get('mail_plugins'), 'quota');
  assert.equal(c.get('mail_plugins', { protocol: 'imap' }), 'quota imap_quota');
  assert.equal(c.get('mail_plugins', { protocol: 'lmtp' }), 'quota');
  assert.equal(c.get('mail_max_userip_connections', { protocol: 'lmtp' }), '10'); // Dovecot's default
  assert.equal(c.get('mail_max_userip_connections', { protocol: 'imap' }), '7');
  assert.equal(c.get('mail_max_userip_connections', { protocol: 'imap', remoteIp: '10.1.2.3' }), '3');
  assert.equal(c.get('mail_max_userip_connections', { protocol: 'pop3', remoteIp: '10.1.2.3' }), '5');
  assert.equal(c.get('mail_max_userip_connections', { protocol: 'pop3', remoteIp: '192.0.2.1' }), '7');
  assert.equal(c.get('ssl_cert', { localName: 'mail.example.org' }), '');
  assert.equal(c.get('auth_failure_delay'), '2 secs');
  assert.equal(c.getTime('auth_failure_delay'), 2000);
  assert.equal(c.getSize('imap_max_line_length'), 65536);
  assert.equal(c.getBool('disable_plaintext_auth'), true);
  assert.equal(c.get('no_such_setting'), '');

  const imapLogin = c.services().find((s) => s.name === 'imap-login')!;
  assert.deepEqual(imapLogin.inetListeners.map((l) => [l.name, l.port, l.ssl]), [['imap', '10143', 'no'], ['imaps', '993', 'yes']]);
  const lmtp = c.services().find((s) => s.name === 'lmtp')!;
  assert.ok(lmtp.unixListeners.some((l) => l.path === '/var/spool/postfix/private/dovecot-lmtp' && l.mode === '0600' && l.user === 'postfix'));
  assert.deepEqual(c.passdbs().map((p) => [p.driver, p.args, p.result_failure]), [['sql', '/etc/dovecot/dovecot-sql.conf.ext', 'continue']]);
  assert.equal(c.userdbs()[0].args, 'uid=vmail gid=vmail home=/var/vmail/%d/%n');
  const ns = c.namespaces()[0];
  assert.equal(ns.settings.separator, '.');
  assert.equal(ns.settings.type, 'private');
  assert.deepEqual(ns.mailboxes, [{ name: 'Junk', settings: { auto: 'subscribe', special_use: '\\Junk', driver: '', comment: '', autoexpunge: '0', autoexpunge_max_mails: '0' } }]);
  assert.equal(c.plugin().quota, 'maildir:User quota');
});

test('-o overrides win, including plugin/ and section paths', async (t) => {
  const dir = tempDir(t, 'override');
  const path = join(dir, 'dovecot.conf');
  writeFileSync(path, TREE);
  const c = await loadConfig(path, { overrides: [['plugin/mail_crypt_private_password', 'pw'], ['auth_mechanisms', 'plain login'], ['service/imap-login/inet_listener/imap/port', '0']] });
  assert.equal(c.plugin().mail_crypt_private_password, 'pw');
  assert.equal(c.plugin().quota, 'maildir:User quota');
  assert.equal(c.get('auth_mechanisms'), 'plain login');
  assert.equal(c.services().find((s) => s.name === 'imap-login')!.inetListeners[0].port, '0');
});

test('a missing <file fails at start as Dovecot does (doveconf -x)', async (t) => {
  const dir = tempDir(t, 'valuefile');
  const path = join(dir, 'dovecot.conf');
  writeFileSync(path, 'ssl_cert = </nonexistent/cert.pem\n');
  await loadConfig(path); // not read: fine, as doveconf -n
  await assert.rejects(loadConfig(path, { readValueFiles: true }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.message, `Error in configuration file ${path} line 1: ssl_cert: Can't open file /nonexistent/cert.pem: No such file or directory`);
    return true;
  });
  const doveconf = requireTool(t, 'doveconf');
  if (!doveconf) return;
  const r = spawnSync(doveconf, ['-x', '-c', path], { encoding: 'utf8', timeout: 120_000 });
  assert.match(r.stderr, new RegExp(`Fatal: Error in configuration file ${path.replace(/[.]/g, '\\.')} line 1: ssl_cert: Can't open file /nonexistent/cert\\.pem: No such file or directory`));
});

test('runtime expansion of other settings and $ENV (snapshots); unknown variable fails', async (t) => {
  const dir = tempDir(t, 'vars');
  const path = join(dir, 'dovecot.conf');
  writeFileSync(path, 'hostname = one\nlogin_greeting = $hostname ready $ENV:SEALMAIL_T\nhostname = two\n');
  const c = await loadConfig(path, { env: { SEALMAIL_T: 'env' } });
  assert.equal(c.get('login_greeting'), 'one ready env');
  writeFileSync(path, 'login_greeting = $nosuch\n');
  await assert.rejects(loadConfig(path), /line 1: Unknown variable: \$nosuch/);
});

test('.conf.ext parser: continuation skips blank and comment lines, quotes, $ENV only, unknown keys', () => {
  const ext = parseExtText('/x/dovecot-sql.conf.ext', [
    'driver = mysql',
    'connect = "host=127.0.0.1 password=Zq8#n2Lw"  # quoted: # is data',
    'password_query = SELECT password \\',
    '',
    '  # a comment inside the continuation',
    '  FROM virtual_users WHERE email=\'%u\'',
    'user_query = $user_query x',
    'default_pass_scheme = $ENV:SCHEME',
  ].join('\n'), { SCHEME: 'BLF-CRYPT' });
  assert.equal(ext.values.get('connect')!.value, 'host=127.0.0.1 password=Zq8#n2Lw');
  assert.equal(ext.values.get('password_query')!.value, "SELECT password FROM virtual_users WHERE email='%u'");
  assert.equal(ext.values.get('password_query')!.line, 3);
  assert.equal(ext.values.get('user_query')!.value, '$user_query x');
  assert.equal(ext.values.get('default_pass_scheme')!.value, 'BLF-CRYPT');
  assert.throws(() => checkKnownKeys(ext, ['driver', 'connect', 'password_query', 'user_query']), /line 8: Unknown setting: default_pass_scheme/);
  assert.throws(() => parseExtText('/x/a.ext', 'driver mysql\n'), /line 1: Expecting '='/);
});

test('values: sizes, times, canonical text; brace expansion', () => {
  assert.equal(parseSize('64 kB'), 65536);
  assert.equal(parseSize('10 KiB'), 10240);
  assert.equal(parseSize('1.5M'), 'Invalid size: 1.5M');
  assert.equal(parseTime('30 days', false), 30 * 86_400_000);
  assert.equal(parseTime('500 ms', false), 'Milliseconds not supported for this setting: 500 ms');
  assert.equal(parseTime('10', false), "Time interval '10' is missing units (add e.g. 's' for seconds)");
  assert.equal(normalizeValue('size', '2048M'), '2 G');
  assert.equal(normalizeValue('time', '120s'), '2 mins');
  assert.equal(normalizeValue('octal', '0'), '00');
  assert.deepEqual(expandBraces('conf.d/{1,2{a,b}}*.conf'), ['conf.d/1*.conf', 'conf.d/2a*.conf', 'conf.d/2b*.conf']);
});
