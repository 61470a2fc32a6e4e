/**
 * Lock-step IMAP sessions for differential tests (Dovecot runs pipelined
 * commands in parallel, so each command waits for its tagged reply): LOGIN,
 * then the given raw command lines; the transcript back, and a comparison
 * that normalises only what must differ between two servers (timings,
 * UIDVALIDITY, capability lists, greeting and login lines).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { TestContext } from 'node:test';
import { setupDovecot } from './dovecot.js';
import { startSealmail } from './sealmail-server.js';
import { freePort } from './databases.js';
import { foldTiming } from './dovecot-timing.js';

/** Run `lines` (each a whole command, literals inline with LITERAL+) after LOGIN; returns the raw transcript. */
export async function lockstep(port: number, lines: (string | Buffer)[], user = 'bob@example.org'): Promise<string> {
  const s = connect(port, '127.0.0.1');
  let out = '';
  let waiter: (() => void) | null = null;
  let want = '';
  s.on('data', (d: Buffer) => {
    out += d.toString('latin1');
    if (want && new RegExp(`(^|\r\n)${want} (OK|NO|BAD) [^\r\n]*\r\n$`).test(out)) { const w = waiter; waiter = null; want = ''; w?.(); }
  });
  const run = (tag: string, bytes: Buffer) => new Promise<void>((resolve, reject) => {
    want = tag;
    waiter = resolve;
    s.write(bytes);
    setTimeout(() => reject(new Error(`no answer to ${tag}: ${out.slice(-300)}`)), 30_000).unref();
  });
  await new Promise<void>((r) => s.once('data', () => r()));
  await run('L0', Buffer.from(`L0 LOGIN ${user} pass\r\n`));
  for (const l of lines) {
    const b = typeof l === 'string' ? Buffer.from(l, 'latin1') : l;
    await run(b.subarray(0, b.indexOf(0x20)).toString('latin1'), Buffer.concat([b, Buffer.from('\r\n')]));
  }
  s.destroy();
  return out;
}

/**
 * LIST/LSUB attributes without \Marked and \UnMarked. Dovecot sends them only
 * while its mailbox list index record of the mailbox is clean: new/ and cur/
 * mtimes stored by a sync at least 2 s after they last changed
 * (maildir_list_index_update_sync, MAILDIR_SYNC_SECS), so for the mailboxes
 * a script creates they appear or not with how long the script took.
 * Sealmail sends neither (dovecot-compat.md).
 */
export function withoutListMarks(line: string): string {
  return line.replace(/(\* (?:LIST|LSUB) \()([^)]*)\)/i, (_, head: string, attrs: string) =>
    `${head}${attrs.split(' ').filter((a) => !/^\\(un)?marked$/i.test(a)).join(' ')})`);
}

export function normaliseTranscript(t: string): string[] {
  return t.split('\r\n')
    .filter((l) => l && !/^\* (OK|PREAUTH) \[CAPABILITY /.test(l) && !/^\* CAPABILITY /.test(l) && !/^L0 /.test(l))
    .map((l) => foldTiming(withoutListMarks(l))
      .replace(/\[UIDVALIDITY \d+\]/, '[UIDVALIDITY X]')
      .replace(/\[(COPYUID|APPENDUID) \d+ /, '[$1 X '));
}

/** Line-by-line equality with the neighbourhood of the first difference in the message. */
export function assertSameTranscript(ours: string[], theirs: string[]): void {
  for (let i = 0; i < Math.max(theirs.length, ours.length); i++) {
    assert.equal(ours[i], theirs[i], `line ${i + 1} differs\n--- Dovecot around it:\n${theirs.slice(Math.max(0, i - 3), i + 3).join('\n')}\n--- Sealmail around it:\n${ours.slice(Math.max(0, i - 3), i + 3).join('\n')}`);
  }
}

/** The real Dovecot and Sealmail side by side with the same extra config; null when Dovecot is missing (skipped). */
export async function bothServers(t: TestContext, extraConf = ''): Promise<{ dovecot: number; sealmail: number } | null> {
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${extraConf}` });
  if (!dv) return null;
  const srv = await startSealmail(t, { extraConf });
  return { dovecot: port, sealmail: srv.imapPort };
}

/** A small seeded generator (LCG) for reproducible generated mail and mailbox trees. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}
