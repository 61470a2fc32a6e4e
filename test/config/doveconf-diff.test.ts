/**
 * Differential test against the real `doveconf -n` (Dovecot 2.3.19): Debian's
 * stock /etc/dovecot tree, the sample tree in conf.d/, the tree `npm start`
 * generates, and one generated tree per example of dovecot-config.md. For each
 * the settings output (header comment lines aside) and the warnings must be
 * identical, or both must fail naming the same file:line with the same text.
 * Intentional differences are asserted explicitly at the end (and listed in
 * dovecot-compat.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { repoRoot, sealadmJs } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';
import { tempDir } from '../helpers/tmp.js';

interface Run { code: number | null; out: string; warnings: string[]; fatal: string; capability?: string; notify?: string }

function split(stdout: string, stderr: string, code: number | null): Run {
  const lines = stderr.split('\n').filter(Boolean);
  return {
    code,
    // Header comment lines name the program, version, OS and host: they must differ. With
    // Pigeonhole's managesieve installed, doveconf adds the two capability strings its settings
    // plugin computes; both print them, each with its own server's list (checked apart below).
    out: stdout.split('\n').filter((l) => !l.startsWith('# ') && !/^managesieve_(notify|sieve)_capability = /.test(l)).join('\n'),
    capability: /^managesieve_sieve_capability = (.*)$/m.exec(stdout)?.[1],
    notify: /^managesieve_notify_capability = (.*)$/m.exec(stdout)?.[1],
    // (with Pigeonhole installed doveconf parses the tree twice and repeats every warning)
    warnings: [...new Set(lines.filter((l) => l.includes(': Warning: ') && !l.includes('NOTE: You can get a new clean config')).map((l) => l.replace(/^doveconf: Warning: /, '')))],
    // (with Pigeonhole installed doveconf reports a fatal error twice)
    fatal: [...new Set(lines.filter((l) => l.includes('Fatal: ')).map((l) => l.replace(/^.*Fatal: /, '')))].join('\n'),
  };
}

function runDoveconf(doveconf: string, conf: string, env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(doveconf, ['-n', '-c', conf], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return split(r.stdout, r.stderr, r.status);
}

function runOurs(conf: string, env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(process.execPath, [sealadmJs, 'config', '-n', '-c', conf], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return split(r.stdout, r.stderr, r.status);
}

function assertSame(doveconf: string, conf: string, label: string, env: NodeJS.ProcessEnv = {}): Run {
  const theirs = runDoveconf(doveconf, conf, env);
  const ours = runOurs(conf, env);
  if (theirs.code === 0) {
    assert.equal(ours.code, 0, `${label}: doveconf accepted it, we failed: ${ours.fatal}`);
    assert.equal(ours.out, theirs.out, `${label}: doveconf -n output differs`);
    // the SIEVE capability line: present in both, Pigeonhole's list in its order; the NOTIFY line (enotify's methods) the same
    assert.ok(theirs.capability && ours.capability, `${label}: managesieve_sieve_capability printed by both`);
    assert.equal(ours.capability, theirs.capability, `${label}: managesieve_sieve_capability`);
    assert.equal(ours.notify, theirs.notify, `${label}: managesieve_notify_capability`);
    assert.deepEqual(ours.warnings, theirs.warnings, `${label}: warnings differ`);
  } else {
    assert.notEqual(ours.code, 0, `${label}: doveconf failed (${theirs.fatal}), we accepted it`);
    assert.equal(ours.fatal, theirs.fatal, `${label}: error message differs`);
  }
  return theirs;
}

/** Each case: files (relative path → content); the first file is the main one. */
const CASES: Record<string, Record<string, string>> = {
  'ambiguous # (warning, comment)': { 'dovecot.conf': 'auth_mechanisms = plain login#x\n' },
  '# inside quotes is data': { 'dovecot.conf': 'login_greeting = "ready # set"\npostmaster_address = \'a#b@x\' # c\n' },
  'continuation joins with one space': { 'dovecot.conf': 'mail_plugins = quota \\\n    mail_crypt\n' },
  'continuation with blanks before backslash': { 'dovecot.conf': 'auth_mechanisms = plain    \\\n  login\n' },
  'blank line inside a continuation drops it': { 'dovecot.conf': 'mail_plugins = quota \\\n\n    mail_crypt\n' },
  'comment line inside a continuation drops it': { 'dovecot.conf': 'mail_plugins = quota \\\n# note\nauth_mechanisms = plain login\n' },
  'key=value without spaces, CRLF line ends': { 'dovecot.conf': 'auth_mechanisms=plain login\r\nmail_location=maildir:~/Maildir\r\n' },
  '<file value, blanks after <, relative path': { 'dovecot.conf': 'ssl_cert = <   certs/cert.pem\nssl_key = <certs/key.pem\n', 'certs/cert.pem': 'x\n', 'certs/key.pem': 'y\n' },
  'section and value on one line is garbage': { 'dovecot.conf': 'service imap { }\n' },
  'brace after a value is part of the value': { 'dovecot.conf': 'service imap {\n  process_limit = 5 }\n}\n' },
  'quoted section names with escapes': { 'dovecot.conf': 'namespace inbox {\n  inbox = yes\n  mailbox "Sent Messages" {\n    special_use = \\Sent\n  }\n  mailbox "A \\"q\\"" {\n    auto = create\n  }\n}\n' },
  'closing brace with trailing comment': { 'dovecot.conf': 'service imap {\n  process_limit = 5\n} # done\n' },
  'unexpected closing brace': { 'dovecot.conf': 'auth_mechanisms = plain\n}\n' },
  'missing closing brace': { 'dovecot.conf': 'service imap {\n  process_limit = 5\n' },
  'include glob order and braces': {
    'dovecot.conf': '!include conf.d/{2,1,9}*.conf\n',
    'conf.d/1-a.conf': 'login_greeting = one\n', 'conf.d/10-b.conf': 'login_greeting = ten\nauth_mechanisms = plain login\n',
    'conf.d/2-c.conf': 'login_greeting = two\n', 'conf.d/9-d.conf': 'hostname = nine\n', 'conf.d/.hidden.conf': 'hostname = hidden\n',
  },
  'include inside a section, relative to the including file': {
    'dovecot.conf': 'service imap {\n  !include sub/limits.inc\n}\n', 'sub/limits.inc': 'process_limit = 7\n',
  },
  'include with quotes looks for a literal name': { 'dovecot.conf': '!include "a.conf"\n', 'a.conf': 'hostname = a\n' },
  'include without matches is fatal': { 'dovecot.conf': '!include nope/*.conf\n' },
  'include_try without matches is fine': { 'dovecot.conf': '!include_try nope/*.conf\nhostname = x\n' },
  'recursive include': { 'dovecot.conf': '!include b.conf\n', 'b.conf': '!include dovecot.conf\n' },
  'whole-value quotes are removed, escapes resolved': { 'dovecot.conf': 'login_greeting = "a \\"b\\" \\\\ c"\nhostname = \'single\'\npostmaster_address = x"y"\n' },
  'quoted \\Sent loses its backslash': { 'dovecot.conf': 'namespace inbox {\n  mailbox Sent {\n    special_use = "\\Sent"\n  }\n}\n' },
  '$setting self-reference in a protocol filter': {
    'dovecot.conf': 'mail_plugins = quota\nprotocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\nprotocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\n',
  },
  'global after a filter does not reach it (warning)': {
    'dovecot.conf': 'protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\nmail_plugins = $mail_plugins zlib\npostmaster_address = pm@x\nprotocol lmtp {\n  postmaster_address = other@x\n}\npostmaster_address = late@x\n',
  },
  // Pigeonhole's settings plugin: the capabilities follow sieve_extensions (relative, replacing, enotify off)
  'sieve_extensions add the RFC 5235 tests and vnd.dovecot.duplicate': { 'dovecot.conf': 'plugin {\n  sieve_extensions = +spamtest +spamtestplus +virustest +vnd.dovecot.duplicate\n}\n' },
  'sieve_extensions add editheader': { 'dovecot.conf': 'plugin {\n  sieve_extensions = +editheader\n}\n' },
  'sieve_extensions without enotify: no notify capability': { 'dovecot.conf': 'plugin {\n  sieve_extensions = -enotify -duplicate\n}\n' },
  'sieve_extensions replacing list; global extensions not announced': { 'dovecot.conf': 'plugin {\n  sieve_extensions = fileinto enotify spamtest virustest\n  sieve_global_extensions = +virustest\n}\n' },
  'self-reference to an empty default keeps the space': { 'dovecot.conf': 'protocols = $protocols imap\nprotocols = $protocols lmtp\n' },
  '$ inside tokens, quoted values and other settings stay literal': {
    'dovecot.conf': "auth_mechanisms = plain\npostmaster_address = pa$$word@x\nmail_location = maildir:~/$ENV:X\nlogin_greeting = \"$hostname\"\nmail_home = $default_internal_user\n",
  },
  'later wins; sections merge': {
    'dovecot.conf': 'hostname = a\nhostname = b\nservice auth {\n  client_limit = 10\n}\nservice auth {\n  client_limit = 20\n  idle_kill = 2 mins\n}\nplugin {\n  quota = maildir:User quota\n}\nplugin {\n  quota_grace = 10%%\n}\nnamespace inbox {\n  inbox = yes\n  separator = .\n}\nnamespace inbox {\n  mailbox Junk {\n    auto = subscribe\n  }\n  mailbox Junk {\n    special_use = \\Junk\n  }\n}\n',
  },
  'two unnamed passdbs are two': { 'dovecot.conf': 'passdb {\n  driver = static\n  args = nopassword\n}\npassdb {\n  driver = sql\n  args = /x.conf.ext\n}\nuserdb {\n  driver = static\n  args = uid=5000 gid=5000 home=/var/vmail/%d/%n\n}\n' },
  'a named passdb opened twice is refused': { 'dovecot.conf': 'passdb sql {\n  driver = sql\n}\npassdb sql {\n  args = x\n}\n' },
  'booleans: yes/no any case; true is an error': { 'dovecot.conf': 'mail_debug = YES\nauth_verbose = No\n' },
  'boolean true is an error': { 'dovecot.conf': 'auth_verbose = true\n' },
  'boolean 0 is an error': { 'dovecot.conf': 'auth_debug = 0\n' },
  'octal mode, sizes and times are printed canonically': {
    'dovecot.conf': 'imap_max_line_length = 128k\ndefault_vsz_limit = 2048M\nauth_cache_ttl = 30d\nauth_cache_negative_ttl = 4w\nmail_max_lock_timeout = 1min\nmailbox_idle_check_interval = 2 secs\nauth_cache_size = 10 M\nservice lmtp {\n  unix_listener /var/spool/postfix/private/dovecot-lmtp {\n    mode = 0600\n    user = postfix\n    group = postfix\n  }\n}\n',
  },
  'milliseconds where not allowed': { 'dovecot.conf': 'auth_failure_delay = 500 ms\n' },
  'time without unit': { 'dovecot.conf': 'auth_cache_ttl = 10\n' },
  'invalid size': { 'dovecot.conf': 'imap_max_line_length = 1.5M\n' },
  'enum value auto = yes is fatal': { 'dovecot.conf': 'namespace inbox {\n  mailbox Sent {\n    auto = yes\n  }\n}\n' },
  'secrets are hidden': { 'dovecot.conf': 'ssl_key_password = x\nssl_dh = </dev/null\nplugin {\n  mail_crypt_global_private_key = abc\n  mail_crypt_private_password = def\n  mail_crypt_require_encrypted_user_key = yes\n  some_pass = 1\n  secret_key_x = 3\n}\n' },
  'filters: protocol !name, local, remote, nested, ordered by specificity': {
    'dovecot.conf': 'protocol !indexer-worker {\n  mail_vsize_bg_after_count = 100\n}\nlocal 127.0.0.1 {\n  protocol imap {\n    imap_idle_notify_interval = 3 mins\n  }\n}\nremote 10.0.0.0/8 {\n  mail_max_userip_connections = 5\n}\nprotocol imap {\n  mail_max_userip_connections = 20\n}\nlocal_name mail.example.org {\n  ssl_cert = </dev/null\n}\n',
  },
  'auth settings are refused inside local/remote': { 'dovecot.conf': 'protocol imap {\n  auth_mechanisms = login\n}\nlocal 1.2.3.4 {\n  auth_mechanisms = x\n}\n' },
  'service listeners: built-in defaults and port = 0': {
    'dovecot.conf': 'service imap-login {\n  inet_listener imap {\n    port = 0\n  }\n  inet_listener imaps {\n    port = 993\n    ssl = yes\n  }\n}\nservice imap {\n  process_limit = 1024\n}\nservice foo {\n  executable = foo\n  process_limit = 0\n}\n',
  },
  'obsolete setting renamed': { 'dovecot.conf': 'mail_cache_compress_min_size = 1024\n' },
  'hidden lib-storage settings are known': { 'dovecot.conf': 'mail_cache_min_mail_count = 010\nmail_index_log2_max_age = 3d\n' },
};

function materialise(dir: string, files: Record<string, string>): string {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return join(dir, Object.keys(files)[0]);
}

for (const [label, files] of Object.entries(CASES)) {
  test(`doveconf -n differential: ${label}`, (t) => {
    const doveconf = requireTool(t, 'doveconf');
    if (!doveconf) return;
    const dir = tempDir(t, 'doveconf');
    assertSame(doveconf, materialise(dir, files), label, { X: 'from-env' });
  });
}

test("doveconf -n differential: Debian's stock /etc/dovecot", (t) => {
  const doveconf = requireTool(t, 'doveconf');
  if (!doveconf) return;
  if (!existsSync('/etc/dovecot/dovecot.conf')) assert.fail('dovecot-core is installed but /etc/dovecot/dovecot.conf is missing');
  const dir = tempDir(t, 'stock');
  cpSync('/etc/dovecot', dir, { recursive: true });
  const r = assertSame(doveconf, join(dir, 'dovecot.conf'), 'stock');
  assert.equal(r.code, 0);
});

test('doveconf -n differential: explicitly set defaults inside namespace and mailbox sections are printed', (t) => {
  const doveconf = requireTool(t, 'doveconf');
  if (!doveconf) return;
  const dir = tempDir(t, 'ns-defaults');
  const conf = materialise(dir, { 'dovecot.conf': 'mail_location = maildir:~/M\nnamespace inbox {\n  inbox = yes\n  type = private\n  hidden = no\n  mailbox Junk {\n    auto = no\n    special_use = \\Junk\n  }\n  mailbox Trash {\n    autoexpunge = 0\n  }\n}\npassdb {\n  driver = static\n  deny = no\n}\n' });
  const r = assertSame(doveconf, conf, 'namespace defaults');
  assert.equal(r.code, 0);
  assert.match(r.out, /^    auto = no$/m);
});

test('doveconf -n differential: the sample tree in conf.d/', (t) => {
  const doveconf = requireTool(t, 'doveconf');
  if (!doveconf) return;
  const dir = tempDir(t, 'sample');
  cpSync(join(repoRoot, 'conf.d'), dir, { recursive: true });
  const r = assertSame(doveconf, join(dir, 'dovecot.conf'), 'sample');
  assert.equal(r.code, 0);
  assert.match(r.out, /^passdb \{$/m);
});

test('doveconf -n differential: a misspelled setting or section is fatal with Dovecot\'s text and file:line', (t) => {
  const doveconf = requireTool(t, 'doveconf');
  if (!doveconf) return;
  const cases: Record<string, string> = {
    'top-level typo': 'hostname = h\nmail_locaton = maildir:~/Maildir\n',
    'typo in a section name': 'hostname = h\nservce lmtp {\n}\n',
    'unknown key in a service': 'service imap-login {\n  inet_listener imap {\n    prot = 143\n  }\n}\n',
    'unknown key in a passdb inside a protocol filter': 'protocol imap {\n  passdb {\n    drivr = static\n  }\n}\n',
    'listener outside a service': 'inet_listener imap {\n  port = 143\n}\n',
    'free-form plugin section stays free': 'plugin {\n  anything_goes = 1\n}\nsieve_frobnicate = 1\n',
  };
  for (const [label, text] of Object.entries(cases)) {
    const dir = tempDir(t, 'unknown');
    const conf = materialise(dir, { 'dovecot.conf': text });
    const theirs = assertSame(doveconf, conf, label);
    assert.equal(theirs.code, 89, `${label}: doveconf exit code`);
    assert.match(theirs.fatal, /Unknown setting: /, label);
    const ours = runOurs(conf);
    assert.equal(ours.code, 89, `${label}: our exit code`);
  }
});

test('doveconf -n differential: the tree npm start generates', async (t) => {
  const doveconf = requireTool(t, 'doveconf');
  if (!doveconf) return;
  const { prepareDemo } = await import('../../src/server/demo.js');
  const dir = tempDir(t, 'demo-tree');
  process.env.SEALMAIL_DEMO_DIR = dir;
  try {
    const demo = await prepareDemo(repoRoot);
    const r = assertSame(doveconf, demo.configPath, 'demo');
    assert.equal(r.code, 0);
    assert.match(r.out, /^login_greeting = Sealmail demo ready\.$/m);
  } finally {
    delete process.env.SEALMAIL_DEMO_DIR;
  }
});
