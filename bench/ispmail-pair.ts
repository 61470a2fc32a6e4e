/**
 * Sealmail and Dovecot 2.3 on the same ISPmail-shaped configuration, for the
 * load benches: users, passwords ({BLF-CRYPT}, as `doveadm pw` makes them)
 * and quotas in one SQLite `virtual_users` table (sql/sqlite.sql), passdb
 * and userdb from a root-only dovecot-sql.conf.ext whose user_query gives
 * home, uid and gid (no mail_uid: the root master of
 * src/server/root-master.ts, unless `mailUid` asks for the supervised
 * pools), IMAPS only (`ssl = required`), the quota plugin, Maildirs of
 * USER_MESSAGES messages per user. Both get the same service limits, raised
 * so that neither refuses the 2,000 connections (Dovecot's imap-login in
 * its high-performance mode, as Dovecot's docs advise for many TLS
 * clients: service_count = 0, one process per core).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { mailIds, setupDovecot, type Dovecot } from '../test/helpers/dovecot.js';
import { startSealmail, type SealmailServer } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import { repoRoot } from '../test/helpers/paths.js';
import { installCopy, makeMaildir } from './imap-server.bench.js';

export const DOMAIN = 'example.org';
export const PASSWORD = 'benchpass';
const USER_MESSAGES = 20;
/** ISPmail's mail_max_userip_connections (20-imap.conf); a bench with more sessions of one user raises it on both servers. */
const USERIP_CONNS = 20;

/** The n-th bench user (1-based); `probe` is the latency probe's. */
export const benchUser = (n: number | 'probe') => (n === 'probe' ? `probe@${DOMAIN}` : `u${String(n).padStart(4, '0')}@${DOMAIN}`);

/** The service limits both servers get: room for `conns` sessions and a storm on top. */
function limits(conns: number): string {
  return `service imap-login {
  service_count = 0
  process_min_avail = 2
  client_limit = ${conns + 200}
}
service imap {
  process_limit = ${conns + 200}
}
default_client_limit = ${2 * conns + 1000}
`;
}

/**
 * Dovecot's default imap-login (what the ISPmail tree leaves it at): one
 * process per connection, which stays to proxy a TLS session; only its
 * process_limit raised.
 */
function highSecurityLogin(conns: number): string {
  return `service imap-login {\n  service_count = 1\n  client_limit = 1\n  process_limit = ${conns + 200}\n}\n`;
}

/** ISPmail's conf.d (10-auth, 10-mail, 10-ssl, 20-imap, 90-quota) as far as these benches touch it. */
function ispmailConf(sqlExt: string, certDir: string, userIpConns: number): string {
  return `disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_username_format = %Lu
passdb {
  driver = sql
  args = ${sqlExt}
}
userdb {
  driver = sql
  args = ${sqlExt}
}
namespace inbox {
  separator = .
  inbox = yes
}
mail_plugins = $mail_plugins quota
protocol imap {
  mail_plugins = $mail_plugins imap_quota
  mail_max_userip_connections = ${userIpConns}
}
plugin {
  quota = maildir:User quota
  quota_grace = 10%%
}
ssl = required
ssl_cert = <${certDir}/cert.pem
ssl_key = <${certDir}/key.pem
ssl_min_protocol = TLSv1.2
ssl_prefer_server_ciphers = yes
`;
}

/** The users' table (ISPmail schema), one BLF-CRYPT hash for all (the same password). */
export function makeUserDb(path: string, users: number): void {
  const hash = spawnSync('doveadm', ['pw', '-s', 'BLF-CRYPT', '-p', PASSWORD], { encoding: 'utf8' }).stdout.trim();
  if (!hash.startsWith('{BLF-CRYPT}')) throw new Error('doveadm pw -s BLF-CRYPT failed');
  const names = [benchUser('probe'), ...Array.from({ length: users }, (_, i) => benchUser(i + 1))];
  const sql = `${readFileSync(join(repoRoot, 'sql', 'sqlite.sql'), 'utf8')}
BEGIN;
INSERT INTO virtual_domains (name) VALUES ('${DOMAIN}');
${names.map((u) => `INSERT INTO virtual_users (domain_id, email, password, quota) VALUES (1, '${u}', '${hash}', 1073741824);`).join('\n')}
COMMIT;
`;
  const r = spawnSync('sqlite3', [path], { input: sql, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sqlite3: ${r.stderr}`);
  chmodSync(path, 0o644); // Sealmail's auth process (default_internal_user) and Dovecot's auth-worker read it
}

/** dovecot-sql.conf.ext as ISPmail writes it (root-only), homes under `homes`. */
export function writeSqlExt(path: string, db: string, homes: string): void {
  const { uid, gid } = mailIds();
  writeFileSync(path, `driver = sqlite
connect = ${db}
default_pass_scheme = BLF-CRYPT
password_query = SELECT email AS user, password FROM virtual_users WHERE email='%u'
user_query = SELECT email AS user, '*:bytes=' || quota AS quota_rule, '${homes}/%d/%n' AS home, ${uid} AS uid, ${gid} AS gid FROM virtual_users WHERE email='%u'
iterate_query = SELECT email AS user FROM virtual_users
`, { mode: 0o600 });
  chownSync(path, 0, 0);
}

/** Every user's Maildir (USER_MESSAGES seen messages in INBOX) under `homes`, owned by the mail uid. */
function makeHomes(homes: string, users: number): void {
  const names = [benchUser('probe'), ...Array.from({ length: users }, (_, i) => benchUser(i + 1))];
  for (const u of names) {
    const [local, domain] = u.split('@');
    makeMaildir(join(homes, domain, local, 'Maildir'), USER_MESSAGES, (i) => `From: Sender ${i} <s${i}@example.net>\nTo: ${u}\nSubject: message ${i}\nDate: Mon, 2 Feb 2026 10:00:00 +0000\nMessage-ID: <${i}.${u}>\n\n${'filler text line\n'.repeat(60)}`);
  }
  const { uid, gid } = mailIds();
  spawnSync('chown', ['-R', `${uid}:${gid}`, homes]);
}

/**
 * Replaces `user`'s Maildir under a server's home tree (`<dir>/home`, as
 * writeSqlExt's user_query has it) with a copy of `src`, owned by the mail
 * user; before the server first opens it.
 */
export function replaceMaildir(serverDir: string, user: string, src: string): void {
  const [local, domain] = user.split('@');
  const home = join(serverDir, 'home', domain, local);
  rmSync(join(home, 'Maildir'), { recursive: true, force: true });
  installCopy(src, join(home, 'Maildir'), home);
}

export interface SealmailSide { srv: SealmailServer; port: number; masterPid: number }
export interface DovecotSide { dv: Dovecot; port: number; masterPid: number }

/** Sealmail on the ISPmail shape; `mailUid`: keep the mail_uid/mail_gid the test helper sets (the supervised pools) instead of the root master. */
export async function startSealmailSide(t: TestContext, db: string, users: number, conns: number, mailUid: boolean, userIpConns = USERIP_CONNS): Promise<SealmailSide> {
  const srv = await startSealmail(t, {
    passdb: '',
    beforeStart: (dir) => {
      writeSqlExt(join(dir, 'dovecot-sql.conf.ext'), db, join(dir, 'home'));
      makeHomes(join(dir, 'home'), users);
    },
    rewriteConf: (text, dir) => {
      // the helper's static userdb goes: users come from the SQL table
      let conf = text.replace(/userdb \{\n  driver = static\n  args = [^\n]*\n\}\n/, '');
      if (!mailUid) conf = conf.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, '');
      return conf + ispmailConf(join(dir, 'dovecot-sql.conf.ext'), dir, userIpConns) + limits(conns);
    },
  });
  return { srv, port: srv.imapsPort, masterPid: srv.pid };
}

/** Dovecot on the same shape, with a copy of Sealmail's certificate (from `certDir`); `loginMode` `security`: imap-login as Dovecot's defaults have it (highSecurityLogin). */
export async function startDovecotSide(t: TestContext, db: string, users: number, conns: number, certDir: string, loginMode: 'performance' | 'security' = 'performance', userIpConns = USERIP_CONNS): Promise<DovecotSide | null> {
  const port = await freePort();
  // the conf names files in its own directory, known once it exists: placeholders, filled in below
  const dv = setupDovecot(t, {
    protocols: 'imap',
    passdb: '',
    userdb: '',
    extraConf: `${ispmailConf('SQLEXT', 'CERTDIR', userIpConns)}${limits(conns)}${loginMode === 'security' ? highSecurityLogin(conns) : ''}service imap-login {\n  inet_listener imaps {\n    port = ${port}\n    ssl = yes\n  }\n}\n`,
  });
  if (!dv) return null;
  for (const f of ['cert.pem', 'key.pem']) copyFileSync(join(certDir, f), join(dv.dir, f));
  const sqlExt = join(dv.dir, 'dovecot-sql.conf.ext');
  writeSqlExt(sqlExt, db, join(dv.dir, 'home'));
  makeHomes(join(dv.dir, 'home'), users);
  writeFileSync(dv.conf, readFileSync(dv.conf, 'utf8').replaceAll('SQLEXT', sqlExt).replaceAll('CERTDIR', dv.dir));
  const r = spawnSync('dovecot', ['-c', dv.conf], { stdio: 'ignore', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`dovecot did not start: ${dv.log()}`);
  // the daemon writes its pid file a moment after `dovecot` returned
  const pidFile = join(dv.dir, 'base', 'master.pid');
  for (const end = Date.now() + 30_000; !existsSync(pidFile);) {
    if (Date.now() > end) throw new Error(`dovecot wrote no pid file: ${dv.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const masterPid = Number(readFileSync(pidFile, 'utf8').trim());
  return { dv, port, masterPid };
}
