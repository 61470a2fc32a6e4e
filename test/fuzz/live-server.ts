/**
 * One real Sealmail process with every listener the fault-boundary and fuzz
 * tests attack: IMAP (in worker processes, as by default), ManageSieve with
 * STARTTLS, LMTP on TCP, the Postfix auth socket, auth-userdb and
 * quota-status; and `allAnswer`, which proves each of them still answers a
 * fresh client over a real socket. Bounded waits only: a listener that does
 * not answer fails the check within its deadline instead of hanging the test.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';

export interface LiveServer {
  srv: SealmailServer;
  sievePort: number;
  lmtpPort: number;
  authPath: string;
  userdbPath: string;
  quotaPath: string;
}

export async function startLiveServer(t: TestContext): Promise<LiveServer> {
  const sievePort = await freePort();
  const lmtpPort = await freePort();
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap lmtp sieve
auth_mechanisms = plain login
service managesieve-login {
  inet_listener sieve {
    port = ${sievePort}
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-userdb {
    mode = 0600
  }
}
service quota-status {
  unix_listener quota-status {
    mode = 0666
  }
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
`,
  });
  const base = join(srv.dir, 'base');
  return { srv, sievePort, lmtpPort, authPath: join(base, 'auth-client'), userdbPath: join(base, 'auth-userdb'), quotaPath: join(base, 'quota-status') };
}

/** Connect, send each step once the previous expectation is met; the whole transcript, or a thrown error naming what was missing. */
export async function converse(target: { port: number } | { path: string }, steps: Array<[send: string | null, expect: string]>, deadlineMs = 45_000): Promise<string> {
  const sock: Socket = 'port' in target ? connect({ host: '127.0.0.1', port: target.port }) : connect(target.path);
  let got = '';
  let closed = false;
  sock.on('data', (d: Buffer) => { got += d.toString('latin1'); });
  sock.on('error', () => { closed = true; });
  sock.on('close', () => { closed = true; });
  const end = Date.now() + deadlineMs;
  try {
    let from = 0;
    for (const [send, expect] of steps) {
      if (send !== null) sock.write(send);
      while (got.indexOf(expect, from) < 0) {
        if (closed || Date.now() > end) throw new Error(`${JSON.stringify(target)}: no ${JSON.stringify(expect)} (${closed ? 'connection closed' : 'deadline'}); got ${JSON.stringify(got)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      from = got.indexOf(expect, from) + expect.length;
    }
    return got;
  } finally { sock.destroy(); }
}

/**
 * Every listener answers a fresh client with its protocol's first exchange, logins included
 * (after hostile logins from 127.0.0.1 the per-IP auth penalty may hold a login up to 15 s: the deadline allows it).
 */
export async function allAnswer(h: LiveServer): Promise<void> {
  await Promise.all([
    converse({ port: h.srv.imapPort }, [[null, '* OK'], ['a NOOP\r\n', 'a OK'], ['b LOGIN u@x pass\r\n', 'b OK'], ['c LOGOUT\r\n', 'c OK']]),
    converse({ port: h.sievePort }, [[null, 'OK "Sealmail test ready."'], ['NOOP\r\n', 'OK "NOOP Completed"'],
      [`AUTHENTICATE "PLAIN" "${Buffer.from('\0u@x\0pass').toString('base64')}"\r\n`, 'OK "Logged in."'], ['LISTSCRIPTS\r\n', 'OK "Listscripts completed."']]),
    converse({ port: h.lmtpPort }, [[null, '220 '], ['LHLO x\r\n', '250 PIPELINING'], ['MAIL FROM:<a@b>\r\n', '250 2.1.0'],
      ['RCPT TO:<u@x>\r\n', '250 2.1.5'], ['DATA\r\n', '354'], ['Subject: s\r\n\r\nbody\r\n.\r\n', ' Saved'], ['QUIT\r\n', '221']]),
    converse({ path: h.authPath }, [[null, 'DONE\n'], ['VERSION\t1\t2\nCPID\t1\n', ''],
      [`AUTH\t1\tPLAIN\tservice=smtp\tresp=${Buffer.from('\0u@x\0pass').toString('base64')}\n`, 'OK\t1\tuser=u@x']]),
    converse({ path: h.userdbPath }, [[null, 'SPID\t'], ['VERSION\t1\t1\nUSER\t1\tu@x\tservice=lda\n', 'USER\t1\tu@x']]),
    converse({ path: h.quotaPath }, [['request=smtpd_access_policy\nrecipient=u@x\nsize=10\n\n', 'action=OK\n\n']]),
  ]);
}
