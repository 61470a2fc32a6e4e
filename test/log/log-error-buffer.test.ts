/**
 * The master's error ring (log-error-buffer.ts), as Dovecot's
 * log-error-buffer.c: warnings, errors, fatals and panics are kept with
 * their time, prefix (with its ": ") and text; debug and info lines are
 * not; the oldest go beyond 1000 lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Logger, onLogError, setLogSink } from '../../src/log/logger.js';
import { LOG_ERROR_BUFFER_MAX_LINES, LogErrorBuffer } from '../../src/log/log-error-buffer.js';

test('log error ring: the kinds Dovecot keeps, the last 1000', (t) => {
  const ring = new LogErrorBuffer();
  onLogError((e) => ring.add(e));
  setLogSink(() => undefined);
  t.after(() => { onLogError(null); setLogSink(null); });
  const log = new Logger('imap(alice)<1><s>');
  log.info('i'); log.debug('d'); log.warn('w'); log.error('e'); log.fatal('f'); log.panic('p');
  const now = Math.floor(Date.now() / 1000);
  const got = ring.all();
  assert.deepEqual(got.map((e) => [e.type, e.prefix, e.text]), [['warning', 'imap(alice)<1><s>: ', 'w'], ['error', 'imap(alice)<1><s>: ', 'e'], ['fatal', 'imap(alice)<1><s>: ', 'f'], ['panic', 'imap(alice)<1><s>: ', 'p']]);
  assert.ok(got.every((e) => Math.abs(e.timestamp - now) <= 1));
  for (let i = 0; i < LOG_ERROR_BUFFER_MAX_LINES; i++) log.error(`n${i}`);
  assert.equal(LOG_ERROR_BUFFER_MAX_LINES, 1000);
  assert.equal(ring.all().length, 1000);
  assert.equal(ring.all()[0].text, 'n0');
});
