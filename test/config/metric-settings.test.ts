/**
 * The `metric {}` settings of Dovecot 2.3 (stats-settings.c) and its event
 * filter language, as Sealmail parses them (src/config/metric-settings.ts),
 * and the registry's matching and rendering (src/server/stats-metrics.ts)
 * for what the differential test does not drive: OR, parentheses, quoted
 * values, wildcards, numeric comparisons, linear buckets of a non-duration
 * field, and the gaps said at start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metricSpecs, parseEventFilter, parseGroupBy, wildcardMatch } from '../../src/config/metric-settings.js';
import { MetricsRegistry } from '../../src/server/stats-metrics.js';

test('filter language: precedence, NOT, parentheses, quoted values', () => {
  assert.deepEqual(parseEventFilter('event=a OR event=b AND NOT x="y z"'), {
    op: 'or', a: { op: 'cmp', key: 'event', cmp: '=', value: 'a' },
    b: { op: 'and', a: { op: 'cmp', key: 'event', cmp: '=', value: 'b' }, b: { op: 'not', a: { op: 'cmp', key: 'x', cmp: '=', value: 'y z' } } },
  });
  assert.equal(parseEventFilter('(event=a)').op, 'cmp');
  assert.throws(() => parseEventFilter('event=a AND'), /end of filter/);
  assert.throws(() => parseEventFilter('(event=a'), /missing \)/);
  assert.throws(() => parseEventFilter('event'), /operator/);
  assert.throws(() => parseEventFilter('x="open'), /unterminated/);
});

test('group_by buckets are Dovecot\'s (stats-settings.c)', () => {
  const [e] = parseGroupBy('duration:exponential:1:5:10');
  assert.deepEqual(e.ranges.map((r) => r.max), [10, 100, 1000, 10000, 100000, Infinity]);
  const [l] = parseGroupBy('size:linear:100:300:100');
  assert.deepEqual(l.ranges, [{ min: -Infinity, max: 100 }, { min: 100, max: 200 }, { min: 200, max: 300 }, { min: 300, max: Infinity }]);
  assert.throws(() => parseGroupBy('d:exponential:1:5:3'), /base must be one of: 2, 10 \(base=3\)/);
  assert.throws(() => parseGroupBy('d:bogus:1:2:3'), /unknown aggregation function/);
  assert.deepEqual(parseGroupBy('a b:discrete').map((g) => g.quantized), [false, false]);
});

test('wildcards match as Dovecot\'s wildcard_match, in linear steps on hostile input', () => {
  assert.ok(wildcardMatch('imap_*_finished', 'imap_command_finished', false));
  assert.ok(wildcardMatch('S?LECT', 'select', true));
  assert.ok(!wildcardMatch('S?LECT', 'select', false));
  // a backtracking matcher would take exponential time here; this one returns to the last * only
  assert.ok(!wildcardMatch('*a*a*a*a*a*a*a*b', 'a'.repeat(5000), false));
});

test('gaps are named: unknown events, fields, settings, unparsable filters', () => {
  const [a, b, c, d, e] = metricSpecs([
    { name: 'a', settings: { filter: 'event=pop3_command_finished' } },
    { name: 'b', settings: { filter: 'event=imap_command_finished', group_by: 'bytes_out', fields: 'bytes_in' } },
    { name: 'c', settings: { filter: 'event=imap_command_finished AND (' } },
    { name: 'd', settings: { filter: 'event=imap_command_finished OR event=auth_request_finished', group_by: 'cmd_name' } },
    { name: 'e', settings: { filter: 'category=mail' } },
  ]);
  assert.deepEqual(e.gaps, ["its filter compares category, which Sealmail's events do not have: that term never matches"]);
  assert.deepEqual(a.gaps, ['Sealmail sends no pop3_command_finished events: its counts stay 0']);
  assert.deepEqual(b.gaps, ['fields = bytes_in has no effect in Sealmail', "group_by bytes_out: Sealmail's imap_command_finished events have no bytes_out field: not grouped by it"]);
  assert.match(c.gaps[0], /its filter .* is not understood by Sealmail: .*; it counts nothing/);
  assert.deepEqual(d.gaps, []);
});

test('registry: numeric comparisons, OR, linear buckets of a counted field, labels escaped', () => {
  const reg = new MetricsRegistry(metricSpecs([
    { name: 'big', settings: { filter: 'event=smtp_server_transaction_finished AND recipients>=2' } },
    { name: 'either', settings: { filter: 'event=auth_request_finished OR event=mail_delivery_finished', group_by: 'user' } },
    { name: 'rcpts', settings: { filter: 'event=smtp_server_transaction_finished', group_by: 'recipients:linear:1:3:1', description: 'recipients per transaction' } },
  ]));
  reg.ingest([
    { name: 'smtp_server_transaction_finished', fields: { recipients: 1 }, durations: [5] },
    { name: 'smtp_server_transaction_finished', fields: { recipients: 3 }, durations: [7, 9] },
    { name: 'mail_delivery_finished', fields: { user: 'a"b\\c' }, durations: [1] },
  ]);
  const text = reg.render();
  assert.match(text, /^dovecot_big_total 2$/m);
  assert.match(text, /^dovecot_either_total\{user="a\\"b\\\\c"\} 1$/m);
  assert.match(text, /^dovecot_either_count 1$/m);
  assert.match(text, /# HELP dovecot_rcpts Histogram of recipients per transaction\n# TYPE dovecot_rcpts histogram\ndovecot_rcpts_bucket\{le="1"\} 1\ndovecot_rcpts_bucket\{le="2"\} 1\ndovecot_rcpts_bucket\{le="3"\} 3\ndovecot_rcpts_bucket\{le="\+Inf"\} 3\ndovecot_rcpts_sum 21.000000\ndovecot_rcpts_count 3\n/);
  assert.ok(text.endsWith('# EOF\n'));
});
