/**
 * SORT and THREAD over 10k messages (SORT_BENCH_N), Sealmail beside Dovecot
 * 2.3 on copies of one Maildir: threads of replies with Re:/Fwd: subjects,
 * References chains and scattered dates. The first run reads every header
 * (Dovecot fills its cache, Sealmail its sealmail.cache); the warm figure
 * is a second login, as a client re-sorting its view.
 */
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setupDovecot } from '../test/helpers/dovecot.js';
import { startSealmail } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import type { BenchRow } from './harness.js';
import { Conn } from './imap-client.js';
import { installCopy, makeMaildir } from './imap-server.bench.js';

const N = Number(process.env.SORT_BENCH_N ?? 10_000);
const USER = 'bench@example.org';

const msg = (i: number): string => {
  const thread = Math.floor(i / 7);
  const pos = i % 7;
  const day = 1 + ((i * 7919) % 28);
  const refs = pos ? `References: ${Array.from({ length: pos }, (_, k) => `<${thread * 7 + k}@bench>`).join(' ')}\n` : '';
  return `From: "Person ${i % 131}" <p${(i * 31) % 131}@example.org>\nTo: list${thread % 5}@example.org\nSubject: ${pos ? ['Re: ', 'RE: [list] ', 'Fwd: '][pos % 3] : ''}topic ${thread % 900}\nDate: ${day} Feb 2026 ${String(i % 24).padStart(2, '0')}:00:00 +0000\nMessage-ID: <${i}@bench>\n${refs}\nbody ${i}\n`;
};

async function measure(port: number): Promise<Record<string, number>> {
  const c = await Conn.open(port);
  await c.cmd(`LOGIN ${USER} pass`);
  await c.cmd('SELECT INBOX');
  const r = {
    subject: await c.cmd('SORT (SUBJECT) UTF-8 ALL'),
    date: await c.cmd('SORT (REVERSE DATE) UTF-8 ALL'),
    from: await c.cmd('SORT (DISPLAYFROM) UTF-8 ALL'),
    refs: await c.cmd('THREAD REFERENCES UTF-8 ALL'),
  };
  c.sock.destroy();
  return r;
}

export default async function sortThreadBench(): Promise<BenchRow[]> {
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  try {
    const port = await freePort();
    const dv = setupDovecot(fakeT, { start: true, extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
    if (!dv) return [{ name: 'SORT/THREAD', sealmail: 'skipped', dovecot: 'Dovecot not installed' }];
    const srv = await startSealmail(fakeT);
    const src = join(dv.dir, 'src-maildir');
    makeMaildir(src, N, msg);
    for (const home of [dv.home(USER), srv.home(USER)]) installCopy(src, join(home, 'Maildir'), home);
    const dCold = await measure(port);
    const sCold = await measure(srv.imapPort);
    const dWarm = await measure(port);
    const sWarm = await measure(srv.imapPort);
    const ms = (x: number) => `${x.toFixed(0)} ms`;
    return [
      { name: `SORT (SUBJECT) of ${N} msgs, first / warm`, sealmail: `${ms(sCold.subject)} / ${ms(sWarm.subject)}`, dovecot: `${ms(dCold.subject)} / ${ms(dWarm.subject)}`, note: 'first = every header read' },
      { name: `SORT (REVERSE DATE) / (DISPLAYFROM), warm`, sealmail: `${ms(sWarm.date)} / ${ms(sWarm.from)}`, dovecot: `${ms(dWarm.date)} / ${ms(dWarm.from)}` },
      { name: `THREAD REFERENCES of ${N} msgs, warm`, sealmail: ms(sWarm.refs), dovecot: ms(dWarm.refs) },
    ];
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}
