/**
 * doveadm's mail iteration (doveadm-mailbox-list-iter.c +
 * doveadm-mail-iter.c) for the search-query commands (fetch, search,
 * expunge, flags, copy, move): every selectable mailbox of the user in the
 * folder list's order, skipped at once when the query can match nothing in
 * it, synced, then each message the query matches, with its sequence number.
 * A message expunged meanwhile is skipped, as doveadm skips it.
 */
import { MailStoreError } from '../mailstore/errors.js';
import { mutf7ToUtf8 } from '../mailstore/api/mailbox-utf7.js';
import type { MailFolder, MailMessage } from '../mailstore/api/mailbox.js';
import type { MailStore } from '../mailstore/store.js';
import type { CommandContext } from './command.js';
import { mailboxMatches, matches, parseQuery, type MessageView, type Query } from './search-query.js';
import { openUserStore } from './commands/mailbox.js';

export interface MatchedMessage {
  /** The mailbox's name as doveadm prints it (UTF-8). */
  name: string;
  folder: MailFolder;
  m: MailMessage;
  seq: number;
  /** The message text, read once on first use. */
  text(): Promise<Buffer>;
  stat(): Promise<{ mtime: Date; ctime: Date; size: number }>;
}

/**
 * Visit every message of `user` that `queryArgs` match. `eachMailbox` runs
 * after a mailbox's last match (with the matched ones), e.g. to expunge them
 * in one go as doveadm's iterator does at deinit.
 */
export async function forEachMatch(ctx: CommandContext, user: string, queryArgs: string[] | Query,
  visit: (x: MatchedMessage) => Promise<void>,
  eachMailbox?: (folder: MailFolder, name: string, matched: MailMessage[]) => Promise<void>): Promise<void> {
  const query = Array.isArray(queryArgs) ? parseQuery(queryArgs) : queryArgs;
  await forEachMatchIn(await openUserStore(ctx, user), query, visit, eachMailbox);
}

/** forEachMatch over a store already open (`sealadm import` walks a second store, the source location). */
export async function forEachMatchIn(store: MailStore, query: Query,
  visit: (x: MatchedMessage) => Promise<void>,
  eachMailbox?: (folder: MailFolder, name: string, matched: MailMessage[]) => Promise<void>): Promise<void> {
  for (const entry of await store.list(true)) {
    if (entry.flags.includes('\\Noselect') || entry.flags.includes('\\NonExistent')) continue;
    const name = mutf7ToUtf8(entry.name);
    let folder: MailFolder;
    try {
      folder = await store.open(entry.name);
      if (mailboxMatches(query, name, '') === false) continue;
      await folder.sync();
    } catch (e) {
      if (e instanceof MailStoreError && e.code === 'NONEXISTENT') continue;
      throw e;
    }
    if (mailboxMatches(query, name, folder.guid) === false) continue;
    const matched: MailMessage[] = [];
    let seq = 0;
    // a copy: what a visit changes (flags, expunges) must not move the walk
    for (const m of [...folder.messages]) {
      seq++;
      let text: Buffer | undefined;
      let st: { mtime: Date; ctime: Date; size: number } | undefined;
      const getText = async () => (text ??= await folder.readAll(m));
      const getStat = async () => (st ??= await folder.stat(m));
      const view: MessageView = {
        mailbox: name, mailboxGuid: folder.guid, uid: m.uid, seq, guid: m.base,
        flags: new Set(m.flags), keywords: m.keywords, recent: m.recent,
        vsize: () => folder.virtualSize(m),
        received: async () => (await getStat()).mtime,
        saved: () => folder.saveDate(m),
        text: getText,
      };
      try {
        if (!(await matches(query, view))) continue;
        matched.push(m);
        await visit({ name, folder, m, seq, text: getText, stat: getStat });
      } catch (e) {
        if (e instanceof MailStoreError && e.code === 'EXPUNGED') continue;
        throw e;
      }
    }
    if (eachMailbox) await eachMailbox(folder, name, matched);
  }
}
