/**
 * A private real Dovecot 2.3 for differential and interop tests: its own
 * config, base_dir, log and mail under a temp dir, listeners on 127.0.0.1
 * with ports the kernel picks (or ones given), never the system service.
 * Lessons baked in: the daemon must hold none of our pipes (stdio ignored),
 * the temp dir must be 0755 for Dovecot's unprivileged workers, mail runs as
 * `nobody` when we are root (Dovecot refuses uid 0 mail without
 * first_valid_uid=0), and `doveadm exec imap` needs real pipes.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { findTool, inCI } from './tools.js';
import { killDaemon, onAbort } from './children.js';

export interface DovecotOptions {
  /** Extra config appended after the generated one (plugins, namespaces, listeners …). */
  extraConf?: string;
  /** Default `imap lmtp`. */
  protocols?: string;
  /** Default `maildir:<dir>/home/%u/Maildir` (one home per user). */
  mailLocation?: string;
  /** Replaces the default static passdb (password `pass` for everyone). */
  passdb?: string;
  /** Replaces the default static userdb (home `<dir>/home/%u`, mail uid below). */
  userdb?: string;
  /** Start the daemon: needed by every doveadm command that looks a user up (-u), auth test, IMAP/LMTP listeners. */
  start?: boolean;
}

export interface Dovecot {
  dir: string;
  conf: string;
  uid: number;
  gid: number;
  /** Home of a user under the default userdb. */
  home(user: string): string;
  /** Run doveadm -c conf; returns stdout/stderr/status (never throws). */
  doveadm(args: string[], input?: string | Buffer): { stdout: string; stderr: string; status: number | null };
  /** Raw IMAP bytes through `doveadm exec imap -u user` (PREAUTH); returns the transcript. */
  imap(user: string, script: Buffer | string): Buffer;
  log(): string;
  stop(): void;
}

export const dovecotMissing = (): string | null =>
  findTool('dovecot') && findTool('doveadm') ? null : 'Dovecot is not installed (apt-get install dovecot-core dovecot-imapd dovecot-lmtpd, or run .ci/run)';

/** Mail uid/gid the private Dovecot (and Sealmail in the same test) should use. */
export function mailIds(): { uid: number; gid: number } {
  const root = process.getuid?.() === 0;
  return root ? { uid: 65534, gid: 65534 } : { uid: process.getuid!(), gid: process.getgid!() };
}

/**
 * Create (and optionally start) a private Dovecot. Returns null when Dovecot
 * is missing on a developer machine (the test is skipped); throws in CI.
 */
export function setupDovecot(t: TestContext | null, opts: DovecotOptions = {}): Dovecot | null {
  const why = dovecotMissing();
  if (why) {
    if (inCI) throw new Error(`CI=true and ${why}`);
    t?.skip(why);
    return null;
  }
  const doveadmBin = findTool('doveadm')!;
  const dovecotBin = findTool('dovecot')!;
  const root = process.getuid?.() === 0;
  const { uid, gid } = mailIds();
  const dir = mkdtempSync(join(tmpdir(), 'sealmail-dovecot-'));
  chmodSync(dir, 0o755);
  for (const d of ['home', 'base']) mkdirSync(join(dir, d));
  if (root) chownSync(join(dir, 'home'), uid, gid);
  const conf = join(dir, 'dovecot.conf');
  const me = process.env.USER && !root ? process.env.USER : 'nobody';
  writeFileSync(conf, `base_dir = ${dir}/base
state_dir = ${dir}/base/state
mail_location = ${opts.mailLocation ?? `maildir:${dir}/home/%u/Maildir`}
first_valid_uid = 0
log_path = ${dir}/dovecot.log
ssl = no
protocols = ${opts.protocols ?? 'imap lmtp'}
listen = 127.0.0.1
${opts.passdb ?? `passdb {
  driver = static
  args = password=pass
}`}
${opts.userdb ?? `userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/home/%u
}`}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
${root ? '' : `default_internal_user = ${me}\ndefault_login_user = ${me}\n`}${opts.extraConf ?? ''}
`);
  let stopped = false;
  // the test process stopped before its after hooks (node --test's timeout), or a caller that never
  // reaches its cleanup (a bench, a crashed script): kill the daemon's group, then remove its files
  const unregister = onAbort(() => { killDaemon(join(dir, 'base', 'master.pid')); rmSync(dir, { recursive: true, force: true }); });
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    unregister();
    const pidFile = join(dir, 'base', 'master.pid');
    if (existsSync(pidFile)) {
      spawnSync(doveadmBin, ['-c', conf, 'stop'], { stdio: 'ignore', timeout: 30_000 });
      for (let i = 0; i < 100 && existsSync(pidFile); i++) spawnSync('sleep', ['0.1']);
      killDaemon(pidFile); // still there after 10 s: nothing of it may outlive its directory
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  };
  const dv: Dovecot = {
    dir, conf, uid, gid,
    home: (user) => join(dir, 'home', user),
    doveadm(args, input) {
      const r = spawnSync(doveadmBin, ['-c', conf, ...args], { input, encoding: 'utf8', timeout: 120_000, maxBuffer: 256 << 20 });
      return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', status: r.status };
    },
    imap(user, script) {
      const inFile = join(dir, `imap-in-${process.pid}`);
      const outFile = join(dir, `imap-out-${process.pid}`);
      writeFileSync(inFile, script);
      spawnSync('sh', ['-c', `cat "$1" | "$2" -c "$3" exec imap -u "$4" | cat > "$5"`, 'sh', inFile, doveadmBin, conf, user, outFile], { stdio: 'ignore', timeout: 120_000 });
      return readFileSync(outFile);
    },
    log: () => (existsSync(join(dir, 'dovecot.log')) ? readFileSync(join(dir, 'dovecot.log'), 'utf8') : ''),
    stop,
  };
  if (opts.start) {
    const r = spawnSync(dovecotBin, ['-c', conf], { stdio: 'ignore', timeout: 30_000 });
    if (r.status !== 0) {
      const log = dv.log();
      stop();
      throw new Error(`dovecot -c ${conf} did not start: ${log}`);
    }
  }
  t?.after(() => stop());
  return dv;
}
