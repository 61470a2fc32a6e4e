/**
 * Hostile input beside Dovecot 2.3 (issue "Hostile input"): a LIST with a
 * 200-character folder name and a pattern of many `*` (a backtracking
 * matcher needed hours), the NOOP latency of a second session while that
 * LIST runs in a loop (goal: under 100 ms), and BODYSTRUCTURE of a
 * 10,000-deep and a 100,000-part message (both capped as Dovecot caps them).
 */
import type { TestContext } from 'node:test';
import { setupDovecot } from '../test/helpers/dovecot.js';
import { startSealmail } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import { deepMessage, wideMessage } from '../test/imap/session/hostile-messages.js';
import { medianMs, type BenchRow } from './harness.js';
import { Conn } from './imap-client.js';

const USER = 'hostile@example.org';
const LONG = 'a'.repeat(200);
/** 16 and 40 `*` between literal a's, ending in a b that never matches. */
const PATTERNS = [16, 40].map((k) => ({ k, pat: '*a'.repeat(k) + '*b' }));

interface Figures { list: Map<number, number>; noopMax: number; noopMedian: number; deep: number; wide: number }

async function measure(port: number): Promise<Figures> {
  const a = await Conn.open(port);
  const b = await Conn.open(port);
  try {
    await a.cmd(`LOGIN ${USER} pass`);
    await b.cmd(`LOGIN ${USER} pass`);
    await a.cmd(`CREATE ${LONG}`);
    const list = new Map<number, number>();
    for (const { k, pat } of PATTERNS) list.set(k, await medianMs(5, () => a.cmd(`LIST "" "${pat}"`)));
    // NOOPs on the second session while the first runs the 40-wildcard LIST back to back
    let running = true;
    const loop = (async () => { for (let i = 0; i < 50 && running; i++) await a.cmd(`LIST "" "${PATTERNS[1].pat}"`); })();
    const noops: number[] = [];
    for (let i = 0; i < 50; i++) noops.push(await b.cmd('NOOP'));
    running = false;
    await loop;
    noops.sort((x, y) => x - y);
    for (const m of [deepMessage(10_000), wideMessage(100_000)]) await a.cmd(`APPEND INBOX {${Buffer.byteLength(m, 'latin1')}+}\r\n${m}`);
    await a.cmd('SELECT INBOX');
    const deep = await medianMs(3, () => a.cmd('FETCH 1 (BODYSTRUCTURE)'));
    const wide = await medianMs(3, () => a.cmd('FETCH 2 (BODYSTRUCTURE)'));
    return { list, noopMax: noops[noops.length - 1], noopMedian: noops[noops.length >> 1], deep, wide };
  } finally { a.sock.destroy(); b.sock.destroy(); }
}

export default async function hostileInputBench(): Promise<BenchRow[]> {
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined, diagnostic: () => undefined } as unknown as TestContext;
  try {
    const port = await freePort();
    const dv = setupDovecot(fakeT, { start: true, protocols: 'imap', extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
    const srv = await startSealmail(fakeT);
    const s = await measure(srv.imapPort);
    const d = dv ? await measure(port) : null;
    const ms = (x: number) => `${x.toFixed(1)} ms`;
    const dv_ = (f: (x: Figures) => string) => (d ? f(d) : 'Dovecot not installed');
    return [
      ...PATTERNS.map(({ k }) => ({ name: `IMAP: LIST with ${k} \`*\` against a 200-char name`, sealmail: ms(s.list.get(k)!), dovecot: dv_((x) => ms(x.list.get(k)!)), note: 'linear matcher: bounded by pattern × name' })),
      { name: 'IMAP: NOOP of a 2nd session during back-to-back long-pattern LISTs (median / max)', sealmail: `${ms(s.noopMedian)} / ${ms(s.noopMax)}`, dovecot: dv_((x) => `${ms(x.noopMedian)} / ${ms(x.noopMax)}`), note: 'goal: max < 100 ms' },
      { name: 'IMAP: BODYSTRUCTURE of a 10,000-deep multipart', sealmail: ms(s.deep), dovecot: dv_((x) => ms(x.deep)), note: 'nesting capped at 100 as Dovecot' },
      { name: 'IMAP: BODYSTRUCTURE of a 100,000-part message', sealmail: ms(s.wide), dovecot: dv_((x) => ms(x.wide)), note: 'parts capped at 10,000 as Dovecot' },
    ];
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}
