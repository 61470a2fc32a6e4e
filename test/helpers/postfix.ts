/**
 * A private real Postfix for the end-to-end delivery tests: its own
 * config_directory, queue_directory and data_directory under a temp dir, an
 * smtpd on 127.0.0.1:<port> without chroot, the ISPmail wiring
 * (virtual_transport = lmtp:unix:private/dovecot-lmtp, smtpd_sasl_type =
 * dovecot with smtpd_sasl_path = private/auth, check_policy_service
 * unix:private/quota-status) — so the mail server under test must put its
 * sockets in `<queue>/private/`, exactly where ISPmail's live under
 * /var/spool/postfix. Needs root (Postfix's master refuses otherwise).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { findTool, inCI } from './tools.js';
import { killDaemon, onAbort } from './children.js';

export interface PostfixOptions {
  smtpPort: number;
  /** Virtual mailbox domains served (default example.org). */
  domains?: string[];
  /** Recipients that exist (virtual_mailbox_maps); everything else is refused by Postfix. */
  mailboxes: string[];
  /** Add check_policy_service unix:private/quota-status to the recipient restrictions. */
  quotaStatus?: boolean;
}

export interface Postfix {
  dir: string;
  configDir: string;
  queueDir: string;
  /** `<queue>/private`: where the mail server under test creates auth, dovecot-lmtp, quota-status. */
  privateDir: string;
  maillog(): string;
  /** Flush the queue (deferred mail is retried now). */
  flush(): void;
  stop(): void;
}

export const postfixMissing = (): string | null => {
  if (!findTool('postfix') || !existsSync('/usr/lib/postfix/sbin/master')) return 'Postfix is not installed (apt-get install postfix, or run .ci/run)';
  if (process.getuid?.() !== 0) return 'the Postfix end-to-end test needs root (Postfix\'s master refuses to run otherwise)';
  return null;
};

const MASTER_CF = (port: number) => `127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

export function setupPostfix(t: TestContext | null, opts: PostfixOptions): Postfix | null {
  const why = postfixMissing();
  if (why) {
    if (inCI) throw new Error(`CI=true and ${why}`);
    t?.skip(why);
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sealmail-postfix-'));
  chmodSync(dir, 0o755);
  const configDir = join(dir, 'etc');
  const queueDir = join(dir, 'queue');
  const dataDir = join(dir, 'data');
  for (const d of [configDir, queueDir, dataDir]) mkdirSync(d, { mode: 0o755 });
  // Postfix wants its data_directory owned by mail_owner (the queue is fixed up by `postfix check`)
  const owner = spawnSync('id', ['-u', 'postfix'], { encoding: 'utf8' });
  const group = spawnSync('id', ['-g', 'postfix'], { encoding: 'utf8' });
  chownSync(dataDir, Number(owner.stdout), Number(group.stdout));
  const domains = opts.domains ?? ['example.org'];
  writeFileSync(join(configDir, 'vmailbox'), opts.mailboxes.map((m) => `${m} OK\n`).join(''));
  writeFileSync(join(configDir, 'main.cf'), `compatibility_level = 3.6
queue_directory = ${queueDir}
data_directory = ${dataDir}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.example.org
mydestination =
mynetworks = 127.0.0.0/8
maillog_file_prefixes = ${dir}
maillog_file = ${dir}/maillog
virtual_mailbox_domains = ${domains.join(', ')}
virtual_mailbox_maps = texthash:${configDir}/vmailbox
virtual_transport = lmtp:unix:private/dovecot-lmtp
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = reject_unauth_destination${opts.quotaStatus ? ', check_policy_service unix:private/quota-status' : ''}
smtpd_tls_security_level = none
smtp_tls_security_level = none
lmtp_destination_recipient_limit = 50
delay_warning_time = 0
maximal_queue_lifetime = 1h
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
`);
  writeFileSync(join(configDir, 'master.cf'), MASTER_CF(opts.smtpPort));
  const pf = (args: string[]) => spawnSync('postfix', ['-c', configDir, ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const check = pf(['check']);
  // postfix reports fatal errors to syslog (or a tty); the maillog only exists once postlogd runs
  if (check.status !== 0) throw new Error(`postfix check failed: ${check.stderr}`);
  const pidFile = join(queueDir, 'pid', 'master.pid');
  // the test process stopped before its after hooks (node --test's timeout): kill the master's group
  const unregister = onAbort(() => { killDaemon(pidFile); rmSync(dir, { recursive: true, force: true }); });
  const stop = (): void => {
    spawnSync('postfix', ['-c', configDir, 'stop'], { stdio: 'ignore', timeout: 60_000 });
    for (let i = 0; i < 100 && existsSync(pidFile); i++) spawnSync('sleep', ['0.1']);
    killDaemon(pidFile); // still there after 10 s: nothing of it may outlive its directory
    rmSync(dir, { recursive: true, force: true });
    unregister();
  };
  t?.after(stop); // before the start: a half-started Postfix is stopped too
  const start = spawnSync('postfix', ['-c', configDir, 'start'], { stdio: 'ignore', timeout: 60_000 });
  if (start.status !== 0) throw new Error(`postfix start failed (see ${dir}/maillog): ${existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : ''}`);
  const privateDir = join(queueDir, 'private');
  const p: Postfix = {
    dir, configDir, queueDir, privateDir,
    maillog: () => (existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : ''),
    flush: () => { pf(['flush']); },
    stop,
  };
  return p;
}
