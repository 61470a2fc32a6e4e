/**
 * The sealadm frame: doveadm's global options and exit codes, and the output
 * formatters' layouts (flow, tab, table, pager, json).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseGlobalOptions } from '../../src/cli/sealadm.js';
import { Printer, type FormatterName } from '../../src/cli/printer.js';
import { sealadmJs } from '../helpers/paths.js';

test('global options parse like doveadm getopt "+c:Df:hi:o:v"', () => {
  const g = parseGlobalOptions(['-c', '/x.conf', '-o', 'plugin/a=b=c', '-ftab', '-Dv', 'mailbox', 'list', '-u', 'x']);
  assert.equal(g.configPath, '/x.conf');
  assert.deepEqual(g.overrides, [['plugin/a', 'b=c']]);
  assert.equal(g.formatter, 'tab');
  assert.equal(g.debug, true);
  assert.deepEqual(g.rest, ['mailbox', 'list', '-u', 'x']);
  assert.throws(() => parseGlobalOptions(['-f', 'csv', 'x']), /Unknown output formatter: csv/);
  assert.throws(() => parseGlobalOptions(['-o', 'novalue', 'x']), /must contain '='/);
  assert.throws(() => parseGlobalOptions(['-c']), /requires an argument/);
});

test('unknown command: usage on stderr, exit 64 (EX_USAGE)', () => {
  const r = spawnSync(process.execPath, [sealadmJs, 'no-such-command'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 64);
  assert.match(r.stderr, /Unknown command 'no-such-command'/);
  assert.match(r.stderr, /^usage: sealadm /m);
});

function render(format: FormatterName, hideTitle = false): string {
  let s = '';
  const p = new Printer(format, { write: (x) => (s += x.toString()) });
  p.header({ key: 'uid' });
  p.header({ key: 'flags', hideTitle });
  for (const [u, f] of [['1', '\\Seen'], ['22', '']]) { p.value(u); p.value(f); }
  p.flush();
  return s;
}

test('formatters lay rows out as doveadm does', () => {
  assert.equal(render('flow'), 'uid=1 flags=\\Seen\nuid=22 flags=\n');
  assert.equal(render('flow', true), 'uid=1 \\Seen\nuid=22 \n');
  assert.equal(render('tab'), 'uid\tflags\n1\t\\Seen\n22\t\n');
  assert.equal(render('pager'), 'uid: 1\nflags: \\Seen\n\f\nuid: 22\nflags: \n');
  // doveadm's table: the last column gets half the room left on 80 columns, every cell ends in a space
  assert.equal(render('table'), `uid ${'flags'.padEnd(39)} \n1   ${'\\Seen'.padEnd(39)} \n22  ${''.padEnd(39)} \n`);
  assert.deepEqual(JSON.parse(render('json')), [{ uid: '1', flags: '\\Seen' }, { uid: '22', flags: '' }]);
});
