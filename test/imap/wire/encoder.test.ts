/** Response encoding: Dovecot 2.3's quoting (LIST output observed on the real server) and streamed literals. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { responseBytes, writeResponse, atom, astr, str, nstr, num, list, NIL, needsLiteral } from '../../../src/imap/wire/encoder.js';

const s = (b: Buffer): string => b.toString('latin1');

test('astring like Dovecot LIST: atom when possible, NIL and specials quoted, \\ and " escaped', () => {
  const line = (name: string) => s(responseBytes({ kind: 'data', values: [atom('LIST'), list([atom('\\HasNoChildren')]), str('.'), astr(name)] }));
  assert.equal(line('qnil'), '* LIST (\\HasNoChildren) "." qnil\r\n');
  assert.equal(line('q z'), '* LIST (\\HasNoChildren) "." "q z"\r\n');
  assert.equal(line('q\\y'), '* LIST (\\HasNoChildren) "." "q\\\\y"\r\n');
  assert.equal(line('q"x'), '* LIST (\\HasNoChildren) "." "q\\"x"\r\n');
  assert.equal(line('NIL'), '* LIST (\\HasNoChildren) "." "NIL"\r\n');
});

test('CR, LF, NUL and 8-bit switch a string to a literal', () => {
  assert.equal(s(responseBytes({ kind: 'data', values: [num(1), atom('FETCH'), list([atom('X'), str('a\r\nb'), nstr(null), NIL, str('é')])] })),
    '* 1 FETCH (X {4}\r\na\r\nb NIL NIL {2}\r\né)\r\n'.replace('é)', Buffer.from('é', 'utf8').toString('latin1') + ')'));
  assert.equal(needsLiteral(Buffer.from('a\x00')), true);
  assert.equal(needsLiteral(Buffer.from('plain "text"')), false);
});

test('status responses with codes', () => {
  assert.equal(s(responseBytes({ kind: 'tagged', tag: 'a1', status: 'OK', code: { name: 'APPENDUID', args: [num(1795402907), num(3)] }, text: 'Append completed (0.001 + 0.000 secs).' })),
    'a1 OK [APPENDUID 1795402907 3] Append completed (0.001 + 0.000 secs).\r\n');
  assert.equal(s(responseBytes({ kind: 'status', status: 'BYE', text: 'Literal size too large' })), '* BYE Literal size too large\r\n');
  assert.equal(s(responseBytes({ kind: 'continue', text: 'OK' })), '+ OK\r\n');
  assert.equal(s(responseBytes({ kind: 'status', status: 'OK', code: { name: 'PERMANENTFLAGS', args: [list([atom('\\Seen'), atom('\\*')])] }, text: 'Flags permitted.' })), '* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.\r\n');
});

test('streamed literal bodies are written chunk by chunk and their size checked', async () => {
  const chunks: Buffer[] = [];
  async function* body() { for (let i = 0; i < 4; i++) yield Buffer.alloc(1000, 0x41 + i); }
  await writeResponse((c) => { chunks.push(c); }, { kind: 'data', values: [num(2), atom('FETCH'), list([atom('BINARY[]'), { type: 'literal', size: 4000, body: body(), literal8: true }])] });
  assert.equal(s(chunks[0]), '* 2 FETCH (BINARY[] ~{4000}\r\n');
  assert.equal(chunks.length, 6); // head, 4 body chunks, tail
  assert.equal(s(chunks[5]), ')\r\n');
  await assert.rejects(writeResponse(() => {}, { kind: 'data', values: [{ type: 'literal', size: 10, body: body() }] }), RangeError);
});
