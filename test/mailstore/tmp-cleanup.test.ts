/**
 * Leftover tmp/ files cleaned as Dovecot's maildir_check_tmp does: when a
 * mailbox is opened and tmp/'s atime says the last scan is older than
 * mail_temp_scan_interval (1 week), files whose ctime is older than 36
 * hours go. Ages come from utimes (the directory's atime) and an injected
 * clock (a file's ctime cannot be set back from user space), never sleeps.
 * The server test shows a STATUS over IMAP runs the scan.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { cleanTmpIfDue, DEFAULT_TEMP_SCAN_INTERVAL_MS, MAILDIR_TMP_DELETE_MS } from '../../src/mailstore/maildir/tmp-cleanup.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

function maildir(t: Parameters<typeof tempDir>[0]): string {
  const dir = tempDir(t);
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(dir, d));
  return dir;
}

test('files older than 36 h (ctime) go when the weekly scan is due; directories and young files stay', async (t) => {
  const dir = maildir(t);
  const tmp = join(dir, 'tmp');
  writeFileSync(join(tmp, '1700000000.M1P1.host'), 'half a message');
  mkdirSync(join(tmp, 'subdir'));
  const real = Date.now();
  // last scan 8 days ago
  utimesSync(tmp, new Date(real - 8 * DAY), new Date(real - 8 * DAY));
  // 35 h later the file is still young
  assert.equal(await cleanTmpIfDue(dir, DEFAULT_TEMP_SCAN_INTERVAL_MS, real + 35 * HOUR), 0);
  assert.ok(existsSync(join(tmp, '1700000000.M1P1.host')));
  // that scan counted: tmp/'s atime is the scan time, the next one waits a week
  utimesSync(tmp, new Date(real - 8 * DAY), new Date(real - 8 * DAY));
  assert.equal(await cleanTmpIfDue(dir, DEFAULT_TEMP_SCAN_INTERVAL_MS, real + MAILDIR_TMP_DELETE_MS + HOUR), 1);
  assert.equal(existsSync(join(tmp, '1700000000.M1P1.host')), false);
  assert.ok(existsSync(join(tmp, 'subdir')));
  // (set to the scan time first; reading the directory then makes it the kernel's now)
  assert.ok(statSync(tmp).atimeMs >= real - 2000);
  writeFileSync(join(tmp, 'again'), 'x');
  assert.equal(await cleanTmpIfDue(dir, DEFAULT_TEMP_SCAN_INTERVAL_MS, real + 3 * DAY), 0, 'not due again within the interval');
});

test('a scan that is not due, or mail_temp_scan_interval = 0, touches nothing', async (t) => {
  const dir = maildir(t);
  const tmp = join(dir, 'tmp');
  writeFileSync(join(tmp, 'x'), 'x');
  const real = Date.now();
  utimesSync(tmp, new Date(real - 2 * DAY), new Date(real - 2 * DAY));
  assert.equal(await cleanTmpIfDue(dir, DEFAULT_TEMP_SCAN_INTERVAL_MS, real + 2 * DAY), 0);
  utimesSync(tmp, new Date(real - 30 * DAY), new Date(real - 30 * DAY));
  assert.equal(await cleanTmpIfDue(dir, 0, real + 30 * DAY), 0);
  assert.ok(existsSync(join(tmp, 'x')));
  assert.ok(statSync(tmp).atimeMs < real - 29 * DAY);
  assert.equal(await cleanTmpIfDue(join(dir, 'missing'), DEFAULT_TEMP_SCAN_INTERVAL_MS), 0);
});

test('opening a mailbox over IMAP runs the due tmp/ scan', async (t) => {
  const srv = await startSealmail(t);
  const c = await ImapLine.open(srv.imapPort);
  t.after(() => c.close());
  await c.cmd('a', 'LOGIN u pass');
  assert.match(await c.cmd('b', 'CREATE Work'), /b OK/);
  const tmp = join(srv.home('u'), 'Maildir', '.Work', 'tmp');
  writeFileSync(join(tmp, 'leftover'), 'x');
  const real = Date.now();
  utimesSync(tmp, new Date(real - 8 * DAY), new Date(real - 8 * DAY));
  assert.match(await c.cmd('c', 'STATUS Work (MESSAGES)'), /c OK/);
  // the scan ran (tmp/'s atime marks it); the file is younger than 36 h, so it stays
  assert.ok(statSync(tmp).atimeMs > real - HOUR, `tmp/ atime ${new Date(statSync(tmp).atimeMs).toISOString()}`);
  assert.ok(existsSync(join(tmp, 'leftover')));
});
