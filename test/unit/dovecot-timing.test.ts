/** Dovecot's timing suffix in both its forms folds the same way (a loaded machine prints three parts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { foldTiming } from '../helpers/dovecot-timing.js';

test('two- and three-part timing suffixes fold alike', () => {
  assert.equal(foldTiming('a OK Logout completed (0.001 + 0.000 secs).'), 'a OK Logout completed.');
  assert.equal(foldTiming('a OK NOOP completed (0.001 + 0.000 + 0.004 secs).'), 'a OK NOOP completed.');
  assert.equal(foldTiming('x OK a (0.001 + 0.000 secs).\r\ny OK b (12.345 + 0.010 + 1.000 secs).\r\n', ' (t)'), 'x OK a (t).\r\ny OK b (t).\r\n');
  assert.equal(foldTiming('a OK (0.001 secs).'), 'a OK (0.001 secs).');
});
