/**
 * Child process for the Dovecot interop test: runs a list of MailStore
 * operations as the mail user (Dovecot refuses to touch mail as root, so the
 * test runs Sealmail's side under the same uid as Dovecot's mail_uid) and
 * prints the results as JSON.
 */
import { MailStore } from '../../src/mailstore/store.js';
import type { SystemFlag } from '../../src/mailstore/api/flags.js';

type Op =
  | { op: 'append'; mailbox: string; text: string; flags?: SystemFlag[]; keywords?: string[] }
  | { op: 'flags'; mailbox: string; uid: number; flags: SystemFlag[]; keywords: string[] }
  | { op: 'expunge'; mailbox: string; uids: number[] }
  | { op: 'create' | 'delete' | 'subscribe' | 'status' | 'fetch'; mailbox: string }
  | { op: 'rename'; mailbox: string; to: string }
  | { op: 'list' };

const { home, location, ops } = JSON.parse(process.argv[2]) as { home: string; location: string; ops: Op[] };
const store = new MailStore({ mailLocation: location, home });
const out: unknown[] = [];
for (const o of ops) {
  switch (o.op) {
    case 'append': { const f = await store.open(o.mailbox); out.push(await f.append(Buffer.from(o.text), { flags: o.flags, keywords: o.keywords })); break; }
    case 'flags': { const f = await store.open(o.mailbox); await f.sync(); await f.setFlags(f.message(o.uid)!, o.flags, o.keywords); out.push(null); break; }
    case 'expunge': { const f = await store.open(o.mailbox); await f.sync(); out.push(await f.expunge(o.uids.map((u) => f.message(u)!).filter(Boolean))); break; }
    case 'create': await store.create(o.mailbox); out.push(null); break;
    case 'delete': await store.delete(o.mailbox); out.push(null); break;
    case 'subscribe': await store.subscribe(o.mailbox); out.push(null); break;
    case 'rename': await store.rename(o.mailbox, o.to); out.push(null); break;
    case 'status': out.push(await store.status(o.mailbox)); break;
    case 'list': out.push(await store.list()); break;
    case 'fetch': {
      const f = await store.open(o.mailbox); await f.sync();
      const rows = [];
      for (const m of f.messages) {
        const order = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
        rows.push({ uid: m.uid, flags: [...order.filter((x) => m.flags.has(x as SystemFlag)), ...m.keywords], size: (await f.stat(m)).size, vsize: await f.virtualSize(m), guid: m.base });
      }
      out.push(rows);
      break;
    }
  }
}
process.stdout.write(JSON.stringify(out));
