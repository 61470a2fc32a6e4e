/**
 * One admin CLI call, as a script or an admin runs it: wall time of a whole
 * `sealadm` process (start, config, userdb, mail store, exit) beside
 * `doveadm` on the same config in the same run. Three ISPmail-shaped trees:
 * the `virtual_users` table ({BLF-CRYPT} passwords, quota_rule from SQL) in
 * SQLite (sql.js) and in MariaDB (mysql2), and a passwd-file. doveadm asks the
 * running Dovecot's auth process for `user`, `auth test|lookup`, so a private
 * Dovecot runs on each tree; sealadm reads the same userdb itself. Issue
 * goal: simple commands (`user`, `auth lookup`, `mailbox status|list`,
 * `quota get`) under 0.3 s. (`who` asks a running Sealmail; not timed here.)
 * SEALADM_BENCH_BEFORE=<path to another build's sealadm.js> adds that build's
 * figures to the notes (before/after in one run).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { mailIds, setupDovecot } from '../test/helpers/dovecot.js';
import { findTool } from '../test/helpers/tools.js';
import { dbMissing, startDb } from '../test/helpers/databases.js';
import { sealadmJs } from '../test/helpers/paths.js';
import { benchUser, DOMAIN, makeUserDb, PASSWORD, writeSqlExt } from './ispmail-pair.js';
import { makeMaildir } from './imap-server.bench.js';
import type { BenchRow } from './harness.js';

const USER = benchUser(1);
/** The user's home as writeSqlExt's user_query gives it. */
const home = (homes: string) => join(homes, DOMAIN, USER.split('@')[0]);
const RUNS = 7;

/** Median and minimum wall time of a whole process, in ms; the exit code must be `want`. */
function timeProcess(cmd: string, args: string[], want = 0): { med: number; min: number } {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== want) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  }
  times.sort((a, b) => a - b);
  return { med: times[Math.floor(times.length / 2)], min: times[0] };
}

/** The userdb shapes (passdb+userdb blocks for dovecot.conf): ISPmail's table (ispmail-pair.ts) in SQLite and MariaDB, and a passwd-file, files in `dir`. */
async function userdbs(dir: string, homes: string, cleanups: (() => unknown)[]): Promise<{ name: string; conf: string }[]> {
  const { uid, gid } = mailIds();
  const db = join(dir, 'users.db');
  makeUserDb(db, 1);
  const ext = join(dir, 'dovecot-sql.conf.ext');
  writeSqlExt(ext, db, homes);
  const hash = spawnSync('sqlite3', [db, `SELECT password FROM virtual_users WHERE email='${USER}'`], { encoding: 'utf8' }).stdout.trim();
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, `${USER}:${hash}:${uid}:${gid}::${home(homes)}::\n`, { mode: 0o644 });
  const block = (driver: string, args: string) => `passdb {\n  driver = ${driver}\n  args = ${args}\n}\nuserdb {\n  driver = ${driver}\n  args = ${args}\n}`;
  const shapes = [{ name: 'SQLite userdb', conf: block('sql', ext) }, { name: 'passwd-file', conf: block('passwd-file', passwd) }];
  const why = dbMissing('mysql');
  if (why) {
    if (process.env.CI === 'true') throw new Error(`CI=true and ${why}`);
    return shapes;
  }
  const my = await startDb('mysql', join(dir, 'mariadb'));
  cleanups.push(() => my.stop());
  await my.exec(`INSERT INTO virtual_domains (name) VALUES ('${DOMAIN}');\nINSERT INTO virtual_users (domain_id, email, password, quota) VALUES (1, '${USER}', '${hash}', 1073741824);`);
  const myExt = join(dir, 'dovecot-mysql.conf.ext');
  // quoted: the test password has a '#', which unquoted starts a comment (Dovecot's settings.c too)
  writeFileSync(myExt, `driver = mysql\nconnect = "${my.connect}"\ndefault_pass_scheme = BLF-CRYPT\npassword_query = SELECT email AS user, password FROM virtual_users WHERE email='%u'\nuser_query = SELECT email AS user, CONCAT('*:bytes=', quota) AS quota_rule, '${homes}/%d/%n' AS home, ${uid} AS uid, ${gid} AS gid FROM virtual_users WHERE email='%u'\niterate_query = SELECT email AS user FROM virtual_users\n`, { mode: 0o600 });
  return [shapes[0], { name: 'MariaDB userdb', conf: block('sql', myExt) }, shapes[1]];
}

export default async function sealadmBench(): Promise<BenchRow[]> {
  return (await sealadmFigures()).rows;
}

/** One command on one userdb shape: median ms of sealadm and of doveadm. */
export interface SealadmFigure { label: string; shape: string; ours: number; theirs: number }

export async function sealadmFigures(): Promise<{ figures: SealadmFigure[]; rows: BenchRow[] }> {
  const figures: SealadmFigure[] = [];
  const doveadm = findTool('doveadm');
  if (!doveadm) return { figures, rows: [{ name: 'sealadm per call', sealmail: 'skipped', dovecot: 'Dovecot not installed' }] };
  const before = process.env.SEALADM_BENCH_BEFORE;
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  const dir = mkdtempSync(join(tmpdir(), 'bench-sealadm-'));
  chmodSync(dir, 0o755);
  const rows: BenchRow[] = [];
  try {
    const { uid, gid } = mailIds();
    const homes = join(dir, 'home');
    makeMaildir(join(home(homes), 'Maildir'), 20, (i) => `From: s${i}@example.net\nTo: ${USER}\nSubject: message ${i}\n\n${'filler text line\n'.repeat(40)}`);
    if (process.getuid?.() === 0) spawnSync('chown', ['-R', `${uid}:${gid}`, homes]);
    for (const shape of await userdbs(dir, homes, cleanups)) {
      const dv = setupDovecot(fakeT, {
        start: true, protocols: 'imap', passdb: shape.conf, userdb: '',
        mailLocation: 'maildir:~/Maildir',
        extraConf: 'namespace inbox {\n  inbox = yes\n  separator = .\n}\nmail_plugins = $mail_plugins quota\nplugin {\n  quota = maildir:User quota\n}\n',
      });
      if (!dv) return { figures, rows: [{ name: 'sealadm per call', sealmail: 'skipped', dovecot: 'Dovecot not installed' }] };
      const calls: [string, string[]][] = [
        ['user', ['user', USER]],
        ['mailbox status', ['mailbox', 'status', '-u', USER, 'messages', 'INBOX']],
        ['auth test', ['auth', 'test', USER, PASSWORD]],
        ['auth lookup', ['auth', 'lookup', USER]],
        ['quota get', ['quota', 'get', '-u', USER]],
        ['mailbox list', ['mailbox', 'list', '-u', USER]],
      ];
      for (const [label, args] of calls) {
        // warm the page cache and Dovecot's auth process once, untimed
        spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { timeout: 60_000 });
        dv.doveadm(args);
        const ours = timeProcess(process.execPath, [sealadmJs, '-c', dv.conf, ...args]);
        const theirs = timeProcess(doveadm, ['-c', dv.conf, ...args]);
        const old = before ? timeProcess(process.execPath, [before, '-c', dv.conf, ...args]) : null;
        figures.push({ label, shape: shape.name, ours: ours.med, theirs: theirs.med });
        rows.push({
          name: `sealadm ${label}, ${shape.name} (median of ${RUNS})`,
          sealmail: `${ours.med.toFixed(0)} ms (min ${ours.min.toFixed(0)})`,
          dovecot: `${theirs.med.toFixed(0)} ms (min ${theirs.min.toFixed(0)})`,
          note: `ratio ${(ours.med / theirs.med).toFixed(1)}×; goal < 300 ms${old ? `; before: ${old.med.toFixed(0)} ms (min ${old.min.toFixed(0)})` : ''}`,
        });
      }
      dv.stop();
    }
    const node = timeProcess(process.execPath, ['-e', '0']);
    rows.push({ name: 'node -e 0 (process start alone, same run)', sealmail: `${node.med.toFixed(0)} ms (min ${node.min.toFixed(0)})` });
    return { figures, rows };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    rmSync(dir, { recursive: true, force: true });
  }
}
