/**
 * Postfix's side of Dovecot's auth-client protocol (base_dir/auth-client):
 * the VERSION/CPID handshake, then AUTH requests whose OK/FAIL reply is
 * waited for (bounded).
 */
import type { TestContext } from 'node:test';
import { connect } from 'node:net';
import { until } from './lmtp-wire.js';

export interface AuthClientWire {
  /** Sends one `AUTH\t<id>\t…` line (without its newline); its `OK`/`FAIL` reply line, trimmed. */
  auth(id: string, rest: string): Promise<string>;
  close(): void;
}

export async function openAuthClient(t: TestContext, path: string): Promise<AuthClientWire> {
  const sock = connect(path);
  t.after(() => sock.destroy());
  let got = '';
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => { got += d; });
  sock.on('error', () => undefined);
  sock.write(`VERSION\t1\t2\nCPID\t${process.pid}\n`);
  await until('auth handshake', () => got.includes('\nDONE\n'));
  return {
    async auth(id, rest) {
      got = '';
      sock.write(`AUTH\t${id}\t${rest}\n`);
      const m = await until(`the reply to AUTH ${id}`, () => new RegExp(`^(?:OK|FAIL)\\t${id}(?:\\t.*)?\\n`, 'm').exec(got));
      return m[0].trim();
    },
    close: () => sock.destroy(),
  };
}
