/**
 * NOTIFY (RFC 5465) over many mailboxes (default 500, NOTIFY_BENCH_N to
 * change), the store-level watch of src/imap/notify.ts: the cost of
 * `NOTIFY SET (PERSONAL (MessageNew MessageExpunge FlagChange))` (first look
 * at every mailbox, from the status cache), of a NOOP's look when nothing
 * changed (must not grow with the mailboxes: no STATUS is computed), and of
 * a look after one delivery.
 */
import { mkdtempSync, rmSync, utimesSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MailStore } from '../src/mailstore/store.js';
import { NotifyWatch } from '../src/imap/notify.js';
import { parseNotify } from '../src/imap/notify-filter.js';
import { medianMs, type BenchRow } from './harness.js';

const N = Number(process.env.NOTIFY_BENCH_N ?? 500);

/** Every folder's files dated a minute back, so that the status cache trusts them (it ignores changes < 2 s old). */
function age(root: string): void {
  const t = new Date(Date.now() - 60_000);
  const walk = (d: string) => { for (const e of readdirSync(d, { withFileTypes: true })) { const p = join(d, e.name); if (e.isDirectory()) walk(p); utimesSync(p, t, t); } };
  walk(root);
}

export default async function bench(): Promise<BenchRow[]> {
  const home = mkdtempSync(join(tmpdir(), 'sealmail-bench-notify-'));
  try {
    const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
    await store.ensureRoot();
    // one message each: the status cache keeps no empty mailbox (its HIGHESTMODSEQ 0 counts as unknown)
    for (let i = 0; i < N; i++) { await store.create(`box${i}`); await (await store.open(`box${i}`)).append(Buffer.from('Subject: x\n\nbody\n')); }
    age(join(home, 'Maildir'));
    for (let i = 0; i < N; i++) await store.status(`box${i}`); // the status caches, as earlier STATUS/LIST-STATUS leave them
    const r = parseNotify([{ type: 'atom', value: 'SET' }, { type: 'list', items: [{ type: 'atom', value: 'PERSONAL' }, { type: 'list', items: ['MessageNew', 'MessageExpunge', 'FlagChange'].map((value) => ({ type: 'atom' as const, value })) }] }], () => null);
    if (!r.ok) throw new Error('NOTIFY spec');
    const w = new NotifyWatch({ store, condstore: false, selectedName: () => null, mailboxOut: (n) => n }, r.spec);
    const t0 = process.hrtime.bigint();
    await w.start();
    const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const idle = await medianMs(50, async () => { await w.flush(); await w.collect(); });
    const f = await store.open('box1');
    const one = await medianMs(10, async () => { await f.append(Buffer.from('Subject: x\n\nbody\n')); await w.flush(); await w.collect(); });
    w.close();
    return [
      { name: `NOTIFY SET (PERSONAL ...): first look at ${N} mailboxes`, sealmail: `${startMs.toFixed(0)} ms`, dovecot: 'not measured (its list index holds the counters)' },
      { name: `NOTIFY: NOOP look, nothing changed, ${N} mailboxes`, sealmail: `${idle.toFixed(2)} ms`, note: 'two stats and no STATUS, whatever the number of mailboxes' },
      { name: `NOTIFY: delivery + NOOP look, ${N} mailboxes`, sealmail: `${one.toFixed(2)} ms`, note: 'only the changed mailbox is looked at' },
    ];
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
