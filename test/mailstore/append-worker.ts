/**
 * Child process for the concurrent-append test: appends N messages to one
 * folder and prints the UIDs it got as JSON.
 */
import { MailStore } from '../../src/mailstore/store.js';

const [home, mailbox, count, tag] = process.argv.slice(2);
const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
const f = await store.open(mailbox);
const uids: number[] = [];
for (let i = 0; i < Number(count); i++) {
  uids.push(await f.append(Buffer.from(`Subject: ${tag} ${i}\r\n\r\nbody ${tag} ${i}\r\n`)));
}
process.stdout.write(JSON.stringify(uids));
