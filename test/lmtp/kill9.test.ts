/**
 * LMTP delivery survives SIGKILL (issue #7 item 2): four clients deliver
 * while the server is killed and restarted ten times, for a plain and a
 * mail-crypt user. Afterwards every message acknowledged with 250 is in the
 * Maildir exactly once, cur/ and new/ hold only complete messages that read
 * back (decrypt) over IMAP, every file belongs to the mail user (never
 * root, however fast clients connect after a restart), the uidlist names
 * every file once with rising UIDs, and the restarted server delivers
 * normally. tmp/ leftovers are fine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { startSealmail } from '../helpers/sealmail-server.js';
import { mailIds } from '../helpers/dovecot.js';
import { freePort } from '../helpers/databases.js';
import { RestartableSealmail, completeFor, killDuringDelivery, lmtpDeliver, markerMessage, markerOf } from '../helpers/lmtp-kill.js';
import { parseUidlist } from '../../src/mailstore/maildir/uidlist.js';

const KILLS = Number(process.env.KILL9_KILLS ?? 10);

const CRYPT = `mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
}
`;

for (const mode of ['plain', 'mail-crypt'] as const) {
  test(`kill -9 during concurrent LMTP deliveries (${mode}): acknowledged = stored once, nothing partial`, async (t) => {
    const lmtpPort = await freePort();
    const user = 'john@example.org';
    const srv0 = await startSealmail(t, {
      passdb: `passdb {\n  driver = static\n  args = password=summersun userdb_mail_crypt_private_password=%w\n}`,
      extraConf: `protocols = imap lmtp\n${mode === 'mail-crypt' ? CRYPT : ''}service lmtp {\n  inet_listener lmtp {\n    port = ${lmtpPort}\n  }\n}\n`,
    });
    // right after a start the IMAP workers may not take connections yet: a few tries
    const imapLogin = async (): Promise<ImapFlow> => {
      for (let i = 0; ; i++) {
        const c = new ImapFlow({ host: '127.0.0.1', port: srv0.imapsPort, secure: true, auth: { user, pass: 'summersun' }, logger: false, tls: { rejectUnauthorized: false } });
        try { await c.connect(); return c; } catch (e) { if (i > 50) throw e; await new Promise((r) => setTimeout(r, 100)); }
      }
    };
    // the first login makes the mail-crypt key pair; deliveries then use its public key
    await (await imapLogin()).logout();
    await srv0.stop();
    const srv = new RestartableSealmail(srv0.conf, [lmtpPort, srv0.imapsPort]);
    t.after(() => srv.kill9());
    await srv.start();

    const stats = await killDuringDelivery(srv, { port: lmtpPort, rcpt: user, clients: 4, kills: KILLS, size: 5 * 1024, prefix: mode, minUpMs: 300, maxUpMs: 1200, tailMs: Number(process.env.KILL9_TAIL_MS ?? 300) });
    t.diagnostic(`${mode}: delivery latency median ${stats.latencyMs.sort((a, b) => a - b)[stats.latencyMs.length >> 1]} ms, max ${stats.latencyMs.at(-1)} ms`);
    t.diagnostic(`${mode}: ${stats.kills} kills, ${stats.attempts} attempts, ${stats.acked.size} acknowledged, restart ${Math.round(stats.restartMs.reduce((a, b) => a + b, 0) / Math.max(1, stats.restartMs.length))} ms on average`);
    assert.ok(stats.acked.size > 0, `nothing was acknowledged:\n${srv.output}`);

    // the restarted server delivers normally
    assert.ok(await lmtpDeliver(lmtpPort, user, markerMessage(`${mode}-after`, 2048)), srv.output);
    stats.acked.add(`${mode}-after`);

    const maildir = join(srv0.home(user), 'Maildir');
    const files = ['cur', 'new'].flatMap((d) => readdirSync(join(maildir, d)).map((f) => ({ sub: d, f })));
    if (mode === 'mail-crypt') for (const { sub, f } of files) assert.equal(readFileSync(join(maildir, sub, f)).subarray(0, 7).toString(), 'CRYPTED', f);
    // started as root, the server gives root up before it serves anyone: clients that connect the
    // moment the port opens must not get a root-owned message (the IMAP worker could not read it)
    if (process.getuid?.() === 0) for (const { sub, f } of files) assert.equal(statSync(join(maildir, sub, f)).uid, mailIds().uid, `${sub}/${f} owned by the mail user`);

    // read every stored message back through IMAP (decrypts mail-crypt files): complete, markers counted
    const c = await imapLogin();
    // a refused command is reported with the server's words and the server's log
    const explain = async (e: unknown) => {
      const x = e as { message?: string; responseText?: string; executedCommand?: string };
      await new Promise((r) => setTimeout(r, 500)); // the server's log line of it
      return new Error(`${x.message}: ${x.executedCommand ?? ''} → ${x.responseText ?? ''}\n${srv.output.slice(-4000)}`);
    };
    const seen = new Map<string, number>();
    const uids: number[] = [];
    const lock = await c.getMailboxLock('INBOX').catch(async (e: unknown) => { throw await explain(e); });
    try {
      for await (const m of (async function* () { try { yield* c.fetch('1:*', { source: true, uid: true }); } catch (e) { throw await explain(e); } })()) {
        const text = m.source!.toString('latin1');
        const marker = markerOf(text);
        assert.ok(marker, `message UID ${m.uid} has no marker`);
        assert.ok(completeFor(text, marker), `message ${marker} (UID ${m.uid}) is partial`);
        seen.set(marker, (seen.get(marker) ?? 0) + 1);
        uids.push(m.uid);
      }
    } finally { lock.release(); }
    await c.logout();
    assert.equal(uids.length, files.length, 'IMAP sees every file in cur/ and new/');
    const missing = [...stats.acked].filter((m) => !seen.has(m));
    const dups = [...seen].filter(([, n]) => n > 1).map(([m]) => m);
    assert.deepEqual(missing, [], 'acknowledged but not stored');
    assert.deepEqual(dups, [], 'stored twice');
    t.diagnostic(`${mode}: ${seen.size} stored (${seen.size - stats.acked.size} delivered but not acknowledged before a kill)`);

    const ul = parseUidlist(readFileSync(join(maildir, 'dovecot-uidlist'), 'utf8'))!;
    assert.ok(ul, 'dovecot-uidlist parses');
    const bases = ul.records.map((r) => r.base);
    assert.equal(new Set(bases).size, bases.length, 'no file twice in the uidlist');
    for (let i = 1; i < ul.records.length; i++) assert.ok(ul.records[i].uid > ul.records[i - 1].uid, 'UIDs rise');
    const listed = new Set(bases);
    for (const { f } of files) assert.ok(listed.has(f.split(':')[0]), `${f} not in the uidlist`);
    assert.deepEqual(ul.problems, [], 'uidlist without problems');
  });
}
