/**
 * The real Dovecot 2.3 and Sealmail side by side for differential session
 * tests that drive their own client (mailbox-names-diff, mime-limits-diff):
 * an IMAP port on each, password `pass` for every user, and Dovecot's timing
 * suffix removed from replies.
 */
import type { TestContext } from 'node:test';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';

/** Ports of both servers, or null when Dovecot is missing (the test is skipped then). */
export async function bothImapServers(t: TestContext): Promise<{ dovecot: number; sealmail: number } | null> {
  const both = await bothImapServersWithHomes(t);
  return both && { dovecot: both.dovecot.port, sealmail: both.sealmail.port };
}

/** Both servers' IMAP ports and users' home directories (a test that changes the Maildir under a session). */
export async function bothImapServersWithHomes(t: TestContext): Promise<Record<'dovecot' | 'sealmail', { port: number; home(user: string): string }> | null> {
  const port = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    protocols: 'imap',
    extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n`,
  });
  if (!dv) return null;
  const seal = await startSealmail(t);
  return { dovecot: { port, home: (u) => dv.home(u) }, sealmail: { port: seal.imapPort, home: (u) => seal.home(u) } };
}

/** A reply without Dovecot's `(0.001 + 0.000 [+ 0.000] secs)`. */
export const untimed = (s: string): string => s.replace(/ \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)/g, '');
