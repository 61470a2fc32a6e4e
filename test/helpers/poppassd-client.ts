/**
 * A poppassd client as Roundcube's driver talks: read the greeting, then
 * send each line only after the previous answer; returns every answer line
 * once the server closes (after `quit`). Used by test/server/poppassd.test.ts
 * and test/cryptkey/roundcube-password.test.ts.
 */
import { connect } from 'node:net';

export async function poppassdExchange(port: number, lines: string[], ms = 60_000): Promise<string[]> {
  const s = connect(port, '127.0.0.1');
  const got: string[] = [];
  const todo = [...lines];
  let buf = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer: ${got.join(' | ')}`)); }, ms);
    s.setEncoding('utf8');
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    s.on('close', () => { clearTimeout(timer); resolve(got); });
    s.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        got.push(buf.slice(0, nl).replace(/\r$/, ''));
        buf = buf.slice(nl + 1);
        const next = todo.shift();
        if (next === undefined) s.end(); else s.write(`${next}\r\n`);
      }
    });
  });
}
