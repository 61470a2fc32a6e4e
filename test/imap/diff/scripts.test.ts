/**
 * Differential IMAP scripts (test/fixtures/imap-diff/scripts/*.imap): each
 * script's Maildir is written for a fresh user on the real Dovecot 2.3 and
 * on Sealmail, the script runs in lock-step on both over TCP, and the
 * normalised transcripts must be identical (see test/helpers/imap-diff.ts for
 * the format and the little that is normalised). A script marked `@differs`
 * is a deliberate difference listed in dovecot-compat.md: only its `@expect`
 * lines may differ, and they must. SEALDIFF_BOTH=dovecot runs every script on Dovecot twice (a sanity
 * check of the harness: it must be deterministic); SEALDIFF_ONLY=NAME runs
 * the scripts whose file name contains NAME; SEALDIFF_OUT=DIR writes both
 * normalised transcripts there (NAME.dovecot, NAME.sealmail) for a diff.
 *
 * The mail-crypt variant runs the FETCH scripts with both servers on the
 * same encrypted Maildir: Dovecot encrypts the script's Maildir into the
 * user's mailbox (`doveadm backup -R`, which keeps file names, UIDs,
 * UIDVALIDITY and dates, and makes the user key on the first save), and
 * Sealmail gets a copy of those very files and of the key attributes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, cpSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import {
  capabilities, compareTranscripts, fixedUidValidities, loadScripts, normalise, runScript, writeMaildir,
} from '../../helpers/imap-diff.js';
import { CRYPT_CONF, CRYPT_PASSDB } from '../../helpers/mail-crypt.js';

const only = process.env.SEALDIFF_ONLY;
const scripts = loadScripts(only ? (n) => n.includes(only) : undefined);
const sanity = process.env.SEALDIFF_BOTH === 'dovecot';

/** The scripts also run on encrypted storage (FETCH rendering from mail-crypt files; CATENATE reading and saving them). */
const CRYPT_SCRIPTS = /^(1[0-2]|40|42|50)-/;

const userOf = (name: string) => `${name.replace(/\.imap$/, '').replace(/[^a-z0-9]/gi, '')}@example.org`;

function chownTree(p: string, uid: number, gid: number): void {
  chownSync(p, uid, gid);
  if (statSync(p).isDirectory()) for (const f of readdirSync(p)) chownTree(join(p, f), uid, gid);
}

test('differential IMAP scripts against the real Dovecot', async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    protocols: 'imap',
    extraConf: `disable_plaintext_auth = no\nmail_max_userip_connections = 100\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n`,
  });
  if (!dv) return;
  const seal = sanity ? null : await startSealmail(t);
  for (const script of scripts) {
    await t.test(script.name, async () => {
      const user = userOf(script.name);
      writeMaildir(dv.home(user), script);
      // a Dovecot that fails shows why: its log goes into the error
      const withLog = <T>(p: Promise<T>): Promise<T> => p.catch((e: Error) => { throw new Error(`${e.message}\n--- Dovecot log:\n${dv.log().slice(-3000)}`); });
      const theirs = await withLog(runScript(script, { name: 'Dovecot', port, user, password: 'pass' }));
      let ours: string[];
      if (seal) {
        writeMaildir(seal.home(user), script);
        ours = await runScript(script, { name: 'Sealmail', port: seal.imapPort, user, password: 'pass' });
      } else {
        // a second user with the same Maildir: the two Dovecot runs must agree
        const twin = `twin${user}`;
        writeMaildir(dv.home(twin), script);
        ours = await withLog(runScript(script, { name: 'Dovecot (again)', port, user: twin, password: 'pass' }));
      }
      const fixed = fixedUidValidities(script);
      const [a, b] = [normalise(theirs, fixed, script.modseqRanks), normalise(ours, fixed, script.modseqRanks)];
      const outDir = process.env.SEALDIFF_OUT;
      if (outDir) {
        mkdirSync(outDir, { recursive: true });
        writeFileSync(join(outDir, `${script.name}.dovecot`), `${a.join('\n')}\n`, 'latin1');
        writeFileSync(join(outDir, `${script.name}.sealmail`), `${b.join('\n')}\n`, 'latin1');
      }
      // the Dovecot twin of the sanity check has no deliberate differences
      const report = compareTranscripts(seal ? script : { ...script, differs: undefined, expect: [] }, a, b, ['Dovecot', seal ? 'Sealmail' : 'Dovecot (again)']);
      if (report) {
        const missing = [...capabilities(theirs)].filter((c) => !capabilities(ours).has(c));
        assert.fail(`${report}${missing.length ? `\n(capabilities Sealmail does not announce: ${missing.join(' ')})` : ''}`);
      }
    });
  }
});

test('differential IMAP scripts with mail-crypt: both servers read the same encrypted Maildir', async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    protocols: 'imap',
    passdb: CRYPT_PASSDB,
    extraConf: `disable_plaintext_auth = no\nmail_max_userip_connections = 100\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${CRYPT_CONF}`,
  });
  if (!dv) return;
  const seal = await startSealmail(t, { passdb: CRYPT_PASSDB, extraConf: CRYPT_CONF });
  for (const script of scripts.filter((x) => CRYPT_SCRIPTS.test(x.name))) {
    await t.test(script.name, async () => {
      const user = userOf(script.name);
      const plain = join(dv.dir, 'plain', user);
      writeMaildir(plain, script);
      const r = dv.doveadm(['-o', 'plugin/mail_crypt_private_password=pass', 'backup', '-R', '-u', user, `maildir:${plain}/Maildir`]);
      assert.equal(r.status, 0, `doveadm backup -R: ${r.stderr}`);
      cpSync(dv.home(user), seal.home(user), { recursive: true, preserveTimestamps: true });
      if (process.getuid?.() === 0) chownTree(seal.home(user), dv.uid, dv.gid);
      const theirs = await runScript(script, { name: 'Dovecot', port, user, password: 'pass' });
      const ours = await runScript(script, { name: 'Sealmail', port: seal.imapPort, user, password: 'pass' });
      const fixed = fixedUidValidities(script);
      const report = compareTranscripts(script, normalise(theirs, fixed, script.modseqRanks), normalise(ours, fixed, script.modseqRanks), ['Dovecot', 'Sealmail']);
      if (report) assert.fail(`(mail-crypt) ${report}`);
    });
  }
});
