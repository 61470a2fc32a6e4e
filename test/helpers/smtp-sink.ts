/**
 * A small SMTP sink on 127.0.0.1 for tests of mail Sealmail sends through
 * `submission_host`: it accepts EHLO, MAIL, RCPT, DATA (dot-unstuffed) and
 * QUIT, records each message's envelope and data, and is closed after the test.
 */
import net from 'node:net';
import type { TestContext } from 'node:test';

export interface SunkMail { from: string; rcpts: string[]; data: string }

export async function smtpSink(t: TestContext): Promise<{ port: number; got: SunkMail[]; waitFor(n: number): Promise<void> }> {
  const got: SunkMail[] = [];
  const sink = net.createServer((s) => {
    let buf = '';
    let inData = false;
    let cur: SunkMail = { from: '', rcpts: [], data: '' };
    s.on('error', () => undefined);
    s.write('220 sink ESMTP\r\n');
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (l === '.') { inData = false; got.push(cur); cur = { from: '', rcpts: [], data: '' }; s.write('250 2.0.0 queued\r\n'); } else cur.data += l.replace(/^\./, '') + '\r\n';
          continue;
        }
        if (/^EHLO /i.test(l)) s.write('250-sink\r\n250 PIPELINING\r\n');
        else if (/^MAIL FROM:<(.*)>/i.test(l)) { cur.from = /<(.*)>/.exec(l)![1]; s.write('250 2.1.0 Ok\r\n'); }
        else if (/^RCPT TO:<(.*)>/i.test(l)) { cur.rcpts.push(/<(.*)>/.exec(l)![1]); s.write('250 2.1.5 Ok\r\n'); }
        else if (/^DATA$/i.test(l)) { inData = true; s.write('354 go\r\n'); }
        else if (/^QUIT$/i.test(l)) { s.end('221 bye\r\n'); }
        else s.write('500 what\r\n');
      }
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  t.after(() => sink.close());
  // bounded wait for the n-th message (the sender reports success only after the sink's 250)
  const waitFor = async (n: number) => { for (let i = 0; i < 100 && got.length < n; i++) await new Promise((res) => setTimeout(res, 50)); };
  return { port: (sink.address() as net.AddressInfo).port, got, waitFor };
}
