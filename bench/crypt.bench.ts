/**
 * mail-crypt reads side by side with Dovecot on the same 2,000 encrypted
 * messages (CRYPT_BENCH_N to change), for P-521 and P-256: Sealmail's store
 * reading every body in order (what FETCH 1:* BODY[] does, keys of the next
 * messages unwrapping on the worker pool meanwhile) the first time (one
 * ECDH + PBKDF2 per message) and again from a
 * fresh login (unwrapped keys from the sealed key cache: AES only), and
 * `doveadm fetch text all` twice on the same Maildir. Mail is written by
 * Sealmail's delivery path (public keys only) into keys doveadm generated.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { startSealmail } from '../test/helpers/sealmail-server.js';
import { freePort } from '../test/helpers/databases.js';
import { Conn } from './imap-client.js';
import { join } from 'node:path';
import { setupDovecot, mailIds } from '../test/helpers/dovecot.js';
import { parseConfigText } from '../test/helpers/config-text.js';
import { MailStore } from '../src/mailstore/store.js';
import { deliveryCrypt, unlockUserCrypt, type CryptUser } from '../src/crypt/user-crypt.js';
import type { BenchRow } from './harness.js';

const N = Number(process.env.CRYPT_BENCH_N ?? 2000);
const PW = 'bench-pw';

function body(i: number): string {
  return `From: bench@example.org\nTo: b@example.org\nSubject: message ${i}\nMessage-ID: <${i}@bench>\n\n${'Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n'.repeat(60)}`;
}

async function asMailUser<T>(fn: () => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0) return fn();
  const { uid, gid } = mailIds();
  process.setegid!(gid); process.seteuid!(uid);
  try { return await fn(); } finally { process.seteuid!(0); process.setegid!(0); }
}

async function runCurve(curve: string): Promise<BenchRow[]> {
  const conf = `mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = ${curve}
  mail_crypt_save_version = 2
}
`;
  const dv = setupDovecot(null, { start: true, extraConf: conf });
  if (!dv) return [{ name: `mail-crypt ${curve}`, sealmail: 'skipped', dovecot: 'Dovecot not installed' }];
  try {
    const U = 'b';
    const gen = dv.doveadm(['-o', `plugin/mail_crypt_private_password=${PW}`, 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']);
    if (gen.status !== 0) throw new Error(`doveadm cryptokey generate: ${gen.stderr}`);
    const config = await parseConfigText(`mail_location = maildir:~/Maildir\n${conf}`);
    const home = dv.home(U);
    const plain = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
    const cu: CryptUser = {
      username: U, mailRoot: plain.loc.root, home, fields: [], protocol: 'imap',
      async mailboxGuid(name) { await plain.ensureRoot(); const f = await plain.open(name); await f.sync(); return f.guid; },
    };
    await asMailUser(async () => {
      const d = await deliveryCrypt(config, cu);
      const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home, codec: d.codec, cipher: d.cipher });
      const inbox = await store.open('INBOX');
      for (let i = 0; i < N; i += 8) await Promise.all(Array.from({ length: Math.min(8, N - i) }, (_, k) => inbox.append(Buffer.from(body(i + k)))));
    });
    rmSync(join(home, 'Maildir', 'sealmail.keycache'), { force: true });
    const readAll = async (): Promise<number> => asMailUser(async () => {
      const crypt = await unlockUserCrypt(config, cu, PW);
      const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home, codec: crypt.codec, cipher: crypt.cipher });
      const inbox = await store.open('INBOX');
      await inbox.sync();
      const t0 = process.hrtime.bigint();
      let bytes = 0;
      // as FETCH 1:* BODY[] does: keys of the next messages unwrap on the workers while one streams
      const ms = inbox.messages;
      for (let i = 0; i < ms.length; i++) {
        if (i % 8 === 0) inbox.prefetch(ms.slice(i, i + 16));
        for await (const c of inbox.read(ms[i])) bytes += c.length;
      }
      if (bytes < N * 1000) throw new Error('short read');
      return Number(process.hrtime.bigint() - t0) / 1e6;
    });
    const first = await readAll();
    const again = await readAll();
    const dove = (): number => {
      const t0 = process.hrtime.bigint();
      const r = spawnSync('doveadm', ['-c', dv.conf, '-o', `plugin/mail_crypt_private_password=${PW}`, 'fetch', '-u', U, 'text', 'all'], { stdio: ['ignore', 'ignore', 'pipe'] });
      if (r.status !== 0) throw new Error(`doveadm fetch: ${r.stderr}`);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const d1 = dove();
    const d2 = dove();
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x Dovecot`;
    const viaImap = await imapRows(curve, conf, home, dv.dir);
    return [...viaImap,
      { name: `mail-crypt ${curve}: first read of ${N} msgs (no key cache)`, sealmail: `${first.toFixed(0)} ms`, dovecot: `${d1.toFixed(0)} ms (doveadm fetch text, cold index)`, note: `${ratio(first, d2)}; goal ≤ 1.5x` },
      { name: `mail-crypt ${curve}: re-read of ${N} msgs (fresh login)`, sealmail: `${again.toFixed(0)} ms`, dovecot: `${d2.toFixed(0)} ms (doveadm fetch text, again)`, note: `${ratio(again, d2)}; goal ≤ 0.5x` },
    ];
  } finally {
    dv.stop();
  }
}

/**
 * The same mail through both IMAP servers: a fresh Dovecot (TCP, password
 * login, userdb_mail_crypt_private_password=%w) and a Sealmail server on a
 * copy of the Maildir; FETCH 1:* BODY[] on a first login (Sealmail: no key
 * cache yet) and again on a second login.
 */
async function imapRows(curve: string, conf: string, home: string, scratch: string): Promise<BenchRow[]> {
  const cleanups: (() => unknown)[] = [];
  const fakeT = { after: (fn: () => unknown) => { cleanups.push(fn); }, skip: () => undefined } as unknown as TestContext;
  try {
    const port = await freePort();
    const passdb = `passdb {\n  driver = static\n  args = password=${PW} userdb_mail_crypt_private_password=%w\n}`;
    const dv = setupDovecot(fakeT, { start: true, passdb, extraConf: `${conf}disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
    const srv = await startSealmail(fakeT, { passdb, extraConf: conf });
    if (!dv) return [];
    const { uid, gid } = mailIds();
    for (const h of [dv.home('b'), srv.home('b')]) {
      cpSync(home, h, { recursive: true });
      rmSync(join(h, 'Maildir', 'sealmail.keycache'), { force: true });
      if (process.getuid?.() === 0) spawnSync('chown', ['-R', `${uid}:${gid}`, h]);
    }
    void scratch;
    const fetchAll = async (p: number): Promise<number> => {
      const c = await Conn.open(p);
      await c.cmd(`LOGIN b ${PW}`);
      await c.cmd('SELECT INBOX');
      const ms = await c.cmd('FETCH 1:* BODY.PEEK[]');
      c.sock.destroy();
      return ms;
    };
    // a body search decrypts every message on both sides (no full-text index); run after a fetch, so both have their keys/caches warm
    const searchText = async (p: number): Promise<number> => {
      const c = await Conn.open(p);
      await c.cmd(`LOGIN b ${PW}`);
      await c.cmd('SELECT INBOX');
      const ms = await c.cmd('UID SEARCH TEXT nothing-matches-this');
      c.sock.destroy();
      return ms;
    };
    const s1 = await fetchAll(srv.imapPort);
    const s2 = await fetchAll(srv.imapPort);
    const d1 = await fetchAll(port);
    const d2 = await fetchAll(port);
    const s3 = await searchText(srv.imapPort);
    const d3 = await searchText(port);
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x Dovecot`;
    return [
      { name: `mail-crypt ${curve}, IMAP FETCH 1:* BODY[] of ${N} msgs: first login`, sealmail: `${s1.toFixed(0)} ms`, dovecot: `${d1.toFixed(0)} ms`, note: `${ratio(s1, d1)}; goal ≤ 1.5x` },
      { name: `mail-crypt ${curve}, IMAP FETCH 1:* BODY[] of ${N} msgs: next login (re-read)`, sealmail: `${s2.toFixed(0)} ms`, dovecot: `${d2.toFixed(0)} ms`, note: `${ratio(s2, d2)}; goal ≤ 0.5x` },
      { name: `mail-crypt ${curve}, IMAP UID SEARCH TEXT over ${N} msgs (next login)`, sealmail: `${s3.toFixed(0)} ms`, dovecot: `${d3.toFixed(0)} ms`, note: `${ratio(s3, d3)}; every message decrypted, no FTS` },
    ];
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}

export default async function cryptBench(): Promise<BenchRow[]> {
  const curves = (process.env.CRYPT_BENCH_CURVES ?? 'secp521r1,prime256v1').split(',');
  const rows: BenchRow[] = [];
  for (const c of curves) rows.push(...(await runCurve(c)));
  return rows;
}
