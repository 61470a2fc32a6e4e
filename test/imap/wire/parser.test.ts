/** Grammar rules of the command reader, byte-level fixtures, split anywhere. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandReader, badText, type ReaderEvent, type ReaderOptions } from '../../../src/imap/wire/parser.js';

function run(input: string | Buffer, opts: ReaderOptions = {}, chunk = 0): ReaderEvent[] {
  const r = new CommandReader(opts);
  const b = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  if (chunk <= 0) return r.push(b);
  const out: ReaderEvent[] = [];
  for (let i = 0; i < b.length; i += chunk) out.push(...r.push(b.subarray(i, i + chunk)));
  return out;
}

/** Events with Buffers turned into strings, for deep comparison. */
function plain(evs: ReaderEvent[]): unknown {
  return JSON.parse(JSON.stringify(evs, (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('latin1') : v)));
}

function one(input: string, opts: ReaderOptions = {}): ReaderEvent {
  const evs = run(input, opts);
  assert.equal(evs.length, 1, JSON.stringify(plain(evs)));
  return evs[0];
}

test('tag, name and atoms; the same events whatever the chunking', () => {
  const input = 'a1 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>) NIL "q\\"x\\\\" {3}\r\nabc ~x\r\n';
  const whole = plain(run(input));
  assert.deepEqual(whole, [
    { type: 'continue' },
    { type: 'command', tag: 'a1', name: 'FETCH', args: [
      { type: 'atom', value: '1:*' },
      { type: 'list', items: [{ type: 'atom', value: 'FLAGS' }, { type: 'atom', value: 'BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>' }] },
      { type: 'nil', value: 'NIL' },
      { type: 'string', value: 'q"x\\' },
      { type: 'literal', value: 'abc', size: 3, literal8: false, streamed: false },
      { type: 'atom', value: '~x' },
    ] },
  ]);
  for (const n of [1, 2, 3, 7, 13]) assert.deepEqual(plain(run(input, {}, n)), whole, `chunk ${n}`);
});

test('UID joins the next word; names are upper-cased; LF alone ends a line', () => {
  const ev = one('x uid fetch 1 FLAGS\n');
  assert.equal(ev.type, 'command');
  if (ev.type === 'command') { assert.equal(ev.name, 'UID FETCH'); assert.equal(ev.tag, 'x'); }
  assert.deepEqual(plain([one('x UID\r\n')]), [{ type: 'error', where: 'name', tag: 'x', name: null, reason: 'Invalid command name', offset: 5 }]);
});

test('no separator needed after ")" or a closing quote (Dovecot leniency)', () => {
  const ev = one('t X (a)(b)"c"d\r\n');
  assert.deepEqual(plain([ev]), [{ type: 'command', tag: 't', name: 'X', args: [
    { type: 'list', items: [{ type: 'atom', value: 'a' }] }, { type: 'list', items: [{ type: 'atom', value: 'b' }] },
    { type: 'string', value: 'c' }, { type: 'atom', value: 'd' },
  ] }]);
});

test('8-bit is allowed in quoted strings, NUL is not', () => {
  const ev = run(Buffer.from('t X "\xc3\xa9"\r\nu X "a\x00b"\r\n', 'latin1'));
  assert.equal(ev[0].type === 'command' && ev[0].args[0].type === 'string' && ev[0].args[0].value.toString('utf8'), 'é');
  assert.deepEqual(plain([ev[1]]), [{ type: 'error', where: 'args', tag: 'u', name: 'X', reason: 'NULs not allowed in strings', offset: 6 }]);
});

const errors: Array<[string, string, number]> = [
  ['t ENABLE "abc\r\n', `Missing '"'`, 13],
  ['t ENABLE (a b\r\n', "Missing ')'", 13],
  ['t ENABLE a)\r\n', "Unexpected ')'", 10],
  ['t ENABLE a\x01b\r\n', 'Invalid characters in atom', 10],
  ['t ENABLE a\xc3\xa9\r\n', '8bit data in atom', 10],
  ['t ENABLE a\x00b\r\n', 'Invalid characters in atom', 10],
  ['t ENABLE a\rb\r\n', 'CR sent without LF', 10],
  ['t ENABLE \rb\r\n', 'CR sent without LF', 9],
  ['t ENABLE {3\r\n', 'Invalid literal size', 11],
  ['t ENABLE {3-}\r\n', 'Invalid literal size', 11],
  ['t ENABLE ~{3}\r\n', 'literal8 not allowed here', 14],
  ['t ENABLE a{3}\r\n', 'Invalid characters in atom', 10],
];
for (const [input, reason, offset] of errors) {
  test(`BAD ${JSON.stringify(input)} → ${reason} @${offset}`, () => {
    const ev = one(input);
    assert.equal(ev.type, 'error');
    if (ev.type !== 'error') return;
    assert.equal(ev.reason, reason);
    assert.equal(ev.offset, offset);
    assert.equal(badText(ev), `Error in IMAP command ENABLE: ${reason}`);
  });
}

test('junk after {n}: Dovecot sends + OK, then BAD', () => {
  assert.deepEqual(run('t ENABLE {3}x\r\n').map((e) => (e.type === 'error' ? `${badText(e)} @${e.offset}` : e.type)), ['continue', 'Error in IMAP command ENABLE: Missing LF after literal size @12']);
});

test('after an error the rest of the line is skipped and the next command parses', () => {
  const evs = run('a ENABLE "x\r\nb NOOP\r\n');
  assert.equal(evs.length, 2);
  assert.equal(evs[1].type === 'command' && evs[1].tag, 'b');
  // an unsent literal's data is read as the next line (what Dovecot does)
  const ev2 = run('a ENABLE ~{3}\r\nabc\r\n');
  assert.deepEqual(ev2.map((e) => e.type === 'error' ? badText(e) : e.type), ['Error in IMAP command ENABLE: literal8 not allowed here', 'Error in IMAP command: Invalid command name']);
});

test('tags: Dovecot rejects specials, 8-bit and empty tags', () => {
  for (const t of ['*', 'a+b', 'a{', 'a"b', 'a%b', 'a]b', 'a\\b', 'a*b', 'a(b', 'a)b', 'a\xc3\xa9', '']) {
    const ev = one(`${t} NOOP\r\n`);
    assert.equal(ev.type === 'error' && badText(ev), 'Error in IMAP tag: Invalid tag', t);
  }
  for (const t of ['a[b', 'a}b', 'a.b', 'a\x7fb', 'A001']) assert.equal(one(`${t} NOOP\r\n`).type, 'command', t);
  assert.equal(badText(one('\r\n') as never), 'Error in IMAP tag: Invalid tag');
});

test('command names must be atoms', () => {
  for (const c of ['', 'NO\x01OP', 'NO(OP', 'NO]OP', 'NO%OP', 'N\xc3\xa9', 'NOOP(', '"NOOP"', 'UID']) {
    const ev = one(`t ${c}\r\n`);
    assert.equal(ev.type === 'error' && badText(ev), 'Error in IMAP command: Invalid command name', JSON.stringify(c));
  }
});

test('LITERAL+ does not ask for a continuation; {} is a zero-length literal', () => {
  assert.deepEqual(run('t X {3+}\r\nabc\r\n').map((e) => e.type), ['command']);
  assert.deepEqual(run('t X {}\r\n\r\n').map((e) => e.type), ['continue', 'command']);
  const evs = run('t X {0+}\r\n ()\r\n');
  assert.deepEqual(plain(evs), [{ type: 'command', tag: 't', name: 'X', args: [{ type: 'literal', value: '', size: 0, literal8: false, streamed: false }, { type: 'list', items: [] }] }]);
});

test('literal inside a list, list continues on the next segment', () => {
  const evs = run('t X (a {2}\r\nbc d) e\r\n');
  assert.deepEqual(plain(evs.slice(1)), [{ type: 'command', tag: 't', name: 'X', args: [
    { type: 'list', items: [{ type: 'atom', value: 'a' }, { type: 'literal', value: 'bc', size: 2, literal8: false, streamed: false }, { type: 'atom', value: 'd' }] },
    { type: 'atom', value: 'e' },
  ] }]);
});

test('a buffered literal that would pass imap_max_line_length is BYE and the reader stops', () => {
  const r = new CommandReader({ maxLineLength: 100 });
  assert.deepEqual(r.push(Buffer.from('t X {80}\r\n')).map((e) => e.type), ['continue']);
  const r2 = new CommandReader({ maxLineLength: 100 });
  assert.deepEqual(plain(r2.push(Buffer.from('t X {95}\r\nmore'))), [{ type: 'bye', text: 'Literal size too large' }]);
  assert.deepEqual(r2.push(Buffer.from('u NOOP\r\n')), []);
});

test('line too long: one huge token vs many tokens (Dovecot\'s two texts)', () => {
  const max = 1000;
  const a = run(`l1 ENABLE ${'a'.repeat(3000)}\r\nl2 NOOP\r\n`, { maxLineLength: max }, 64);
  assert.deepEqual(a.map((e) => (e.type === 'error' ? `${e.tag} ${badText(e)}` : e.type === 'command' ? e.tag : e.type)), ['l1 Error in IMAP command ENABLE: Too long argument', 'l2']);
  const b = run(`l3 ENABLE ${'a '.repeat(1500)}\r\nl4 NOOP\r\n`, { maxLineLength: max }, 64);
  assert.deepEqual(b.map((e) => (e.type === 'error' ? `${e.tag} ${badText(e)}` : e.type === 'command' ? e.tag : e.type)), ['l3 Error in IMAP command ENABLE: IMAP command line too large', 'l4']);
  const c = run(`${'A'.repeat(3000)} NOOP\r\nm2 NOOP\r\n`, { maxLineLength: max }, 64);
  assert.deepEqual(c.map((e) => (e.type === 'error' ? `${e.tag} ${badText(e)}` : e.type === 'command' ? e.tag : e.type)), ['null Error in IMAP tag: Too long argument', 'm2']);
  const d = run(`l9 ${'A'.repeat(3000)}\r\nm1 NOOP\r\n`, { maxLineLength: max }, 64);
  assert.deepEqual(d.map((e) => (e.type === 'error' ? `${e.tag} ${badText(e)}` : e.type === 'command' ? e.tag : e.type)), ['l9 Error in IMAP command: Too long argument', 'm1']);
});

test('list nesting is limited', () => {
  const ev = one(`t X ${'('.repeat(5)}${')'.repeat(5)}\r\n`, { maxListDepth: 4 });
  assert.equal(ev.type === 'error' && ev.reason, 'List too deep');
  assert.equal(one(`t X ${'('.repeat(4)}${')'.repeat(4)}\r\n`, { maxListDepth: 4 }).type, 'command');
});

test('streamed literal: start, raw chunks, end, then the rest of the command', () => {
  const r = new CommandReader({ streamLiteral: (i) => i.name === 'APPEND' });
  const body = Buffer.alloc(200_000, 0x41);
  const evs: ReaderEvent[] = [];
  evs.push(...r.push(Buffer.from('a APPEND INBOX (\\Seen) ~{200000}\r\n')));
  assert.equal(evs[0].type, 'literal-start');
  if (evs[0].type === 'literal-start') {
    assert.equal(evs[0].info.size, 200_000);
    assert.equal(evs[0].info.sync, true);
    assert.equal(evs[0].info.literal8, true);
    assert.equal(evs[0].info.args.length, 2);
  }
  for (let i = 0; i < body.length; i += 65536) evs.push(...r.push(body.subarray(i, i + 65536)));
  evs.push(...r.push(Buffer.from('\r\n')));
  const data = evs.filter((e) => e.type === 'literal-data');
  assert.ok(data.length >= 4);
  assert.equal(data.reduce((n, e) => n + (e.type === 'literal-data' ? e.chunk.length : 0), 0), 200_000);
  const last = evs[evs.length - 1];
  assert.equal(evs[evs.length - 2].type, 'literal-end');
  assert.deepEqual(last.type === 'command' && last.args[2], { type: 'literal', value: null, size: 200_000, literal8: true, streamed: true });
});

test('disconnect mid-literal reports abort and keeps nothing', () => {
  const r = new CommandReader({ streamLiteral: () => true });
  r.push(Buffer.from('a APPEND INBOX {10}\r\nabc'));
  assert.deepEqual(r.end(), [{ type: 'literal-aborted' }]);
  assert.equal(r.busy, false);
  const r2 = new CommandReader();
  r2.push(Buffer.from('a X {10}\r\nabc'));
  assert.deepEqual(r2.end(), []);
  assert.equal(r2.busy, false);
});

test('rejectLiteral: a sync literal was never sent, a LITERAL+ one is skipped', () => {
  const r = new CommandReader({ streamLiteral: () => true });
  assert.equal(r.push(Buffer.from('a APPEND INBOX {99999999}\r\n'))[0].type, 'literal-start');
  r.rejectLiteral();
  assert.equal(r.push(Buffer.from('b NOOP\r\n'))[0].type, 'command');
  const evs = r.push(Buffer.from('c APPEND INBOX {5+}\r\n'));
  assert.equal(evs[0].type, 'literal-start');
  r.rejectLiteral();
  const after = r.push(Buffer.from('12345 more\r\nd NOOP\r\n'));
  assert.deepEqual(after.map((e) => e.type === 'command' ? e.tag : e.type), ['d']);
});

test('streamLiteral may reject at once: literal-rejected, LITERAL+ data skipped', () => {
  const r = new CommandReader({ streamLiteral: (i) => (i.size > 10 ? 'reject' : true) });
  const evs = r.push(Buffer.from('a APPEND INBOX {20+}\r\n01234567890123456789 x\r\nb NOOP\r\n'));
  assert.deepEqual(evs.map((e) => (e.type === 'command' ? e.tag : e.type)), ['literal-rejected', 'b']);
  const sync = r.push(Buffer.from('c APPEND INBOX {20}\r\nd NOOP\r\n'));
  assert.deepEqual(sync.map((e) => (e.type === 'command' ? e.tag : e.type)), ['literal-rejected', 'd']);
});
