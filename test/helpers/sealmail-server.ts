/**
 * A Sealmail server process for protocol tests: its own config (static
 * passdb, Maildirs under a temp dir, a self-signed certificate, ports the
 * test picked), started as a child process and stopped with SIGTERM. As
 * root it drops to the same mail uid the private Dovecot uses.
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { sealmailJs } from './paths.js';
import { tempDir } from './tmp.js';
import { spawnOwned } from './children.js';
import { freePort } from './databases.js';
import { mailIds } from './dovecot.js';
import { makeSelfSignedCert } from '../../src/server/selfsigned.js';

export interface SealmailServer {
  dir: string;
  conf: string;
  imapPort: number;
  imapsPort: number;
  certPem: string;
  pid: number;
  home(user: string): string;
  output(): string;
  stop(): Promise<number | null>;
}

/** `env`: added to the server's environment (the SEALMAIL_TEST_* hooks of src/config/connection-limits.ts); `bin`: an installed `sealmail` to run instead of this tree's. */
export async function startSealmail(t: TestContext, opts: { extraConf?: string; passdb?: string; env?: Record<string, string>; beforeStart?: (dir: string) => void | Promise<void>; rewriteConf?: (text: string, dir: string) => string; ready?: (output: string, dir: string) => boolean; startMs?: number; bin?: string } = {}): Promise<SealmailServer> {
  const dir = tempDir(t, 'sealmail-srv');
  chmodSync(dir, 0o755);
  const { uid, gid } = mailIds();
  mkdirSync(join(dir, 'home'));
  if (process.getuid?.() === 0) chownSync(join(dir, 'home'), uid, gid);
  const { certPem, keyPem } = makeSelfSignedCert('localhost');
  writeFileSync(join(dir, 'cert.pem'), certPem);
  writeFileSync(join(dir, 'key.pem'), keyPem, { mode: 0o600 });
  const imapPort = await freePort();
  const imapsPort = await freePort();
  const conf = join(dir, 'dovecot.conf');
  // sockets (auth-userdb, lmtp …) under the test's own directory, never the system's /run/dovecot
  writeFileSync(conf, `protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/base
mail_location = maildir:~/Maildir
${process.getuid?.() === 0 ? `mail_uid = ${uid}\nmail_gid = ${gid}\n` : ''}ssl = yes
ssl_cert = <${dir}/cert.pem
ssl_key = <${dir}/key.pem
login_greeting = Sealmail test ready.
auth_failure_delay = 0
${opts.passdb ?? `passdb {
  driver = static
  args = password=pass
}`}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/home/%u
}
service imap-login {
  inet_listener imap {
    port = ${imapPort}
  }
  inet_listener imaps {
    port = ${imapsPort}
    ssl = yes
  }
}
${opts.extraConf ?? ''}
`);
  await opts.beforeStart?.(dir);
  if (opts.rewriteConf) writeFileSync(conf, opts.rewriteConf(readFileSync(conf, 'utf8'), dir));
  // killed with its workers after the test even when the start below fails (children.ts)
  const child: ChildProcess = (opts.bin ? spawnOwned(t, opts.bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } }) : spawnOwned(t, process.execPath, [sealmailJs, '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } }));
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  // generous: a start takes ~1 s, but several seconds on a machine loaded by parallel test files
  const end = Date.now() + (opts.startMs ?? 60_000);
  const ready = opts.ready ?? ((o: string) => o.includes(`:${imapsPort} `) || o.includes(`:${imapsPort} (`));
  while (!ready(out, dir)) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`sealmail did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const srv: SealmailServer = {
    dir, conf, imapPort, imapsPort, certPem, pid: child.pid!,
    home: (u) => join(dir, 'home', u),
    output: () => out,
    async stop() { if (child.exitCode === null) child.kill('SIGTERM'); return exited; },
  };
  return srv;
}
