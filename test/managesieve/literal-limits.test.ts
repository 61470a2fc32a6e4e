/**
 * Literal sizes on the ManageSieve listener. Before login managesieve-login
 * parses a command, literals included, within MAX_MANAGESIEVE_LINE (8192
 * bytes): a bigger literal announcement (`AUTHENTICATE "PLAIN"
 * {8000000+}`) is its fatal parser error, `BYE "Literal size too large"`,
 * and the connection ends — Sealmail used to accept 8 MB there and buffer it
 * in the master from an unauthenticated client. After login a script
 * arriving in many small segments is stored whole (its chunks are joined
 * once the literal is complete, not on every segment).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { converse, startLiveServer } from '../fuzz/live-server.js';
import { memSocket, until } from '../fuzz/mem-socket.js';
import { tempDir } from '../helpers/tmp.js';
import { parseConfigText } from '../helpers/config-text.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { ManageSieveSession } from '../../src/managesieve/session.js';

test('before login a literal over 8192 bytes is BYE "Literal size too large"; one within is read', async (t) => {
  const h = await startLiveServer(t);
  const big = await converse({ port: h.sievePort }, [[null, 'OK "Sealmail test ready."'], ['AUTHENTICATE "PLAIN" {8000000+}\r\n', 'BYE "Literal size too large"\r\n']]);
  assert.match(big, /BYE "Literal size too large"\r\n$/);
  const b64 = Buffer.from('\0u@x\0pass').toString('base64');
  const ok = await converse({ port: h.sievePort }, [[null, 'OK "Sealmail test ready."'], [`AUTHENTICATE "PLAIN" {${b64.length}+}\r\n${b64}\r\n`, 'OK "Logged in."']]);
  assert.doesNotMatch(ok, /BYE/);
});

test('after login a 1 MB script sent in 1 kB segments is stored whole', async (t) => {
  const dir = tempDir(t, 'ms-literal');
  const config = await parseConfigText(`auth_failure_delay = 0\npassdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = home=${dir}/%u\n}\n`);
  const auth = new AuthEngine(config, 'sieve');
  t.after(() => auth.close());
  const m = memSocket();
  new ManageSieveSession(m.sock, { config, auth, resolveHome: (u) => join(dir, u), tlsAvailable: false, secured: true }).start();
  m.sock.push(Buffer.from(`AUTHENTICATE "PLAIN" "${Buffer.from('\0u@x\0pass').toString('base64')}"\r\n`));
  assert.ok(await until(() => m.text().includes('OK "Logged in."')));
  const script = Buffer.from(('# ' + 'x'.repeat(97) + '\n').repeat(10_000) + 'keep;\n');
  const wire = Buffer.concat([Buffer.from(`PUTSCRIPT "big" {${script.length}+}\r\n`), script, Buffer.from('\r\n')]);
  for (let i = 0; i < wire.length; i += 1024) m.sock.push(wire.subarray(i, i + 1024));
  assert.ok(await until(() => /PUTSCRIPT completed|NO /.test(m.text()), 30_000), m.text().slice(-300));
  assert.match(m.text(), /OK "PUTSCRIPT completed\."\r\n$/);
  assert.ok(readFileSync(join(dir, 'u@x', 'sieve', 'big.sieve')).equals(script));
});
