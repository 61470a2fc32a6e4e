/**
 * What SORT and THREAD need of each message — the first Subject, From, To,
 * Cc, Date, Message-ID, References and In-Reply-To values, INTERNALDATE and
 * RFC822.SIZE — read from the message header only (the body is never
 * decrypted or read) and kept in the folder's field cache (sealed like every
 * cached value), so a second SORT of a big mailbox opens no message file.
 */
import type { MaildirFolder, MaildirMessage } from './maildir/folder.js';
import { MailStoreError } from './errors.js';
import { headerEnd, headerValues } from './message-headers.js';
import { SORT_HEADER_NAMES, type SortHeaders, type SortMessage } from './sort.js';

const FIELD = 'sorthdr';
/** Messages read at once on a cold cache. */
const PARALLEL = 32;

interface Cached { h: SortHeaders; received: number }

/** The header block only: reading stops at the first chunk that holds the empty line. */
async function readHeader(folder: MaildirFolder, m: MaildirMessage): Promise<Buffer> {
  let all: Buffer = Buffer.alloc(0);
  for await (const c of folder.read(m)) {
    all = all.length ? Buffer.concat([all, c]) : c;
    if (all[0] === 0x0a || (all[0] === 0x0d && all[1] === 0x0a) || all.indexOf('\n\n') >= 0 || all.indexOf('\n\r\n') >= 0) break;
  }
  return all.subarray(0, headerEnd(all));
}

async function load(folder: MaildirFolder, m: MaildirMessage): Promise<Cached> {
  const fc = folder.fieldCache;
  const hit = await fc?.get(m.uid, FIELD);
  if (hit) {
    try { return JSON.parse(hit.toString('utf8')) as Cached; } catch { /* rebuilt below */ }
  }
  const [head, st] = await Promise.all([readHeader(folder, m), folder.stat(m)]);
  const h = {} as SortHeaders;
  for (const [k, name] of Object.entries(SORT_HEADER_NAMES) as [keyof SortHeaders, string][]) {
    const v = headerValues(head, name)[0];
    h[k] = v === undefined ? null : v.replace(/\r?\n/g, '');
  }
  const c: Cached = { h, received: Math.floor(st.mtime.getTime() / 1000) };
  await fc?.set(m.uid, FIELD, Buffer.from(JSON.stringify(c), 'utf8'));
  return c;
}

/**
 * SortMessage records for `items` (seq as given; pass the UID as seq for UID
 * THREAD numbering). A message expunged by another session meanwhile is
 * left out, as Dovecot leaves out what it can no longer read.
 */
export async function loadSortMessages(folder: MaildirFolder, items: { seq: number; m: MaildirMessage }[]): Promise<SortMessage[]> {
  const out: (SortMessage | null)[] = new Array(items.length).fill(null);
  for (let i = 0; i < items.length; i += PARALLEL) {
    await Promise.all(items.slice(i, i + PARALLEL).map(async ({ seq, m }, k) => {
      try {
        const [c, size] = await Promise.all([load(folder, m), folder.virtualSize(m)]);
        out[i + k] = { seq, uid: m.uid, received: c.received, size, h: c.h };
      } catch (e) {
        if (!(e instanceof MailStoreError && e.code === 'EXPUNGED')) throw e;
      }
    }));
  }
  return out.filter((x): x is SortMessage => x !== null);
}
