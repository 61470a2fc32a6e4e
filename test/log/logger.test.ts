/** Log lines keep Dovecot's shape; destinations follow log_path / info_log_path / debug_log_path. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configureLogging, formatTimestamp, Logger, setLogSink } from '../../src/log/logger.js';
import { tempDir } from '../helpers/tmp.js';

test('Dovecot line shape and per-level files', (t) => {
  const dir = tempDir(t, 'log');
  const main = join(dir, 'dovecot.log');
  const info = join(dir, 'info.log');
  const debug = join(dir, 'debug.log');
  configureLogging({ log_path: main, info_log_path: info, debug_log_path: debug, log_timestamp: '%Y-%m-%d ', debug: new Set(['mail']) });
  const log = Logger.forUser('imap', 'john@example.org', 'AbCd');
  log.info('Logged out in=10 out=200');
  log.error('Mailbox INBOX: broken\nline');
  log.debug('dbg');
  new Logger('auth', 'auth').debug('not enabled');
  const day = formatTimestamp('%Y-%m-%d ');
  assert.equal(readFileSync(info, 'utf8'), `${day}imap(john@example.org)<${process.pid}><AbCd>: Info: Logged out in=10 out=200\n`);
  assert.equal(readFileSync(main, 'utf8'), `${day}imap(john@example.org)<${process.pid}><AbCd>: Error: Mailbox INBOX: broken line\n`);
  assert.equal(readFileSync(debug, 'utf8'), `${day}imap(john@example.org)<${process.pid}><AbCd>: Debug: dbg\n`);
});

test('log_timestamp strftime subset', () => {
  const d = new Date(2026, 0, 5, 7, 8, 9);
  assert.equal(formatTimestamp('%b %d %H:%M:%S ', d), 'Jan 05 07:08:09 ');
  assert.equal(formatTimestamp('%e|%%|%q', d), ' 5|%|%q');
});

test('mail_log_prefix set by the admin shapes the mail users\' lines; the default keeps service(user)<pid><session>', (t) => {
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  t.after(() => { setLogSink(null); configureLogging({ mail_log_prefix: '%s(%u)<%{pid}><%{session}>: ' }); });
  configureLogging({ mail_log_prefix: '%s(%u)<%{pid}><%{session}>: ' });
  Logger.forUser('imap', 'ann@example.org', 'S1').info('a');
  configureLogging({ mail_log_prefix: '%{service}: %n at %d [%{session}] ' });
  Logger.forUser('lmtp', 'ann@example.org', 'S2').info('b');
  assert.deepEqual(lines, [`imap(ann@example.org)<${process.pid}><S1>: Info: a`, 'lmtp: ann at example.org [S2] Info: b']);
});
