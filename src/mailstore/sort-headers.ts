/**
 * What SORT and THREAD need of each message — the first Subject, From, To,
 * Cc, Date, Message-ID, References and In-Reply-To values, INTERNALDATE and
 * RFC822.SIZE — read from the message header only (one pread for a plain
 * file; the body of an encrypted one is never decrypted) and kept in the
 * folder's field cache (sealed like every cached value), so a later SORT
 * opens no message file. The records (and the sort strings derived from
 * them) are also kept in memory with the shared folder handle: re-sorting a
 * warm mailbox parses nothing.
 */
import type { MailFolder, MailMessage } from './api/mailbox.js';
import { MailStoreError } from './errors.js';
import { headerEnd } from './message-headers.js';
import { SORT_HEADER_NAMES, type SortHeaders, type SortMessage } from './sort.js';

const FIELD = 'sorthdr';
/** Messages read at once on a cold cache. */
const PARALLEL = 32;
const HEAD_BYTES = 16384;

interface Cached { h: SortHeaders; received: number; memo?: Map<string, unknown> }

/** Per shared folder handle: uid → record (messages never change under a UID; a new UIDVALIDITY starts afresh). */
const MEMORY = new WeakMap<MailFolder, { validity: number; map: Map<number, Cached> }>();

/** The header block only, and INTERNALDATE. */
async function readHeader(folder: MailFolder, m: MailMessage): Promise<{ head: Buffer; mtime: Date }> {
  const { head, mtime } = await folder.readHead(m, HEAD_BYTES);
  const end = headerEnd(head);
  if (end < head.length || head.length < HEAD_BYTES) return { head: head.subarray(0, end), mtime };
  // a header longer than the first read: stream until its end
  let all: Buffer = Buffer.alloc(0);
  for await (const c of folder.read(m)) {
    all = all.length ? Buffer.concat([all, c]) : c;
    if (headerEnd(all) < all.length) break;
  }
  return { head: all.subarray(0, headerEnd(all)), mtime };
}

const WANTED = new Map(Object.entries(SORT_HEADER_NAMES).map(([k, n]) => [n, k as keyof SortHeaders]));

/** First value of each wanted field in one pass, unfolded (line breaks removed, as Dovecot's first-header lookup). */
const emptyHeaders = (): SortHeaders => ({ subject: null, from: null, to: null, cc: null, date: null, messageId: null, references: null, inReplyTo: null });

function firstValues(head: Buffer): SortHeaders {
  const h = emptyHeaders();
  const lines = head.toString('utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    const colon = l.indexOf(':');
    if (colon <= 0 || l[0] === ' ' || l[0] === '\t') continue;
    const key = WANTED.get(l.slice(0, colon).trimEnd().toLowerCase());
    if (!key || h[key] !== null) continue;
    let v = l.slice(colon + 1).replace(/^[ \t]+/, '');
    while (i + 1 < lines.length && (lines[i + 1][0] === ' ' || lines[i + 1][0] === '\t')) v += lines[++i];
    h[key] = v.replace(/\r/g, '');
  }
  return h;
}

async function fromMessage(folder: MailFolder, m: MailMessage): Promise<Cached> {
  const { head, mtime } = await readHeader(folder, m);
  return { h: firstValues(head), received: Math.floor(mtime.getTime() / 1000) };
}

/**
 * SortMessage records for `items` (seq as given; pass the UID as seq for UID
 * THREAD numbering). A message expunged by another session meanwhile is
 * left out, as Dovecot's THREAD leaves out what it can no longer read;
 * with `keepExpunged` (SORT) it stays with empty keys (no date, size 0, no
 * headers), as Dovecot's index-sort sorts a message still in the session's
 * view whose file is gone.
 */
export async function loadSortMessages(folder: MailFolder, items: { seq: number; m: MailMessage }[], keepExpunged = false): Promise<SortMessage[]> {
  let held = MEMORY.get(folder);
  if (!held || held.validity !== folder.uidValidity) MEMORY.set(folder, (held = { validity: folder.uidValidity, map: new Map() }));
  const mem = held.map;
  const fc = folder.fieldCache;
  const out: (SortMessage | null)[] = new Array(items.length).fill(null);
  const missing: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const { seq, m } = items[i];
    const c = mem.get(m.uid);
    if (c && m.vsize !== undefined) out[i] = { seq, uid: m.uid, received: c.received, size: m.vsize, h: c.h, memo: (c.memo ??= new Map()) };
    else missing.push(i);
  }
  const fresh: [number, string, Buffer][] = [];
  for (let k = 0; k < missing.length; k += PARALLEL) {
    await Promise.all(missing.slice(k, k + PARALLEL).map(async (i) => {
      const { seq, m } = items[i];
      try {
        let c = mem.get(m.uid);
        if (!c) {
          const hit = await fc?.get(m.uid, FIELD);
          try { if (hit) c = JSON.parse(hit.toString('utf8')) as Cached; } catch { /* rebuilt below */ }
          if (!c) {
            c = await fromMessage(folder, m);
            fresh.push([m.uid, FIELD, Buffer.from(JSON.stringify({ h: c.h, received: c.received }), 'utf8')]);
          }
          mem.set(m.uid, c);
        }
        out[i] = { seq, uid: m.uid, received: c.received, size: await folder.virtualSize(m), h: c.h, memo: (c.memo ??= new Map()) };
      } catch (e) {
        if (!(e instanceof MailStoreError && e.code === 'EXPUNGED')) throw e;
        if (keepExpunged) out[i] = { seq, uid: m.uid, received: 0, size: 0, h: emptyHeaders() };
      }
    }));
  }
  if (fresh.length) await fc?.setMany(fresh);
  return out.filter((x): x is SortMessage => x !== null);
}
