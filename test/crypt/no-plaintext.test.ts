/**
 * No plaintext at rest (issue #5 item 3): messages with unique marker words
 * in From, Subject, body and an attachment name are delivered to an
 * encrypted user (public keys only), then read, searched and indexed with
 * the password — which fills Sealmail's index, status and key caches. Every
 * file under the user's home, the temp directory the processes used and the
 * log must then hold none of the markers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { mailIds } from '../helpers/dovecot.js';

const MARKERS = ['ZebulonFromMarker', 'QuokkaSubjectMarker', 'NarwhalBodyMarker', 'AxolotlAttachMarker'];

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p)); else out.push(p);
  }
  return out;
}

test('no marker word of an encrypted user\'s mail is anywhere at rest', (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const { uid, gid } = mailIds();
  const home = join(dir, 'home');
  const tmp = join(dir, 'tmp');
  for (const d of [home, tmp]) { mkdirSync(d); if (process.getuid?.() === 0) chownSync(d, uid, gid); }
  chmodSync(tmp, 0o1777);
  const log = join(dir, 'sealmail.log');
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `mail_location = maildir:~/Maildir
mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
log_path = ${log}
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
  mail_crypt_require_encrypted_user_key = yes
}
passdb {
  driver = static
  args = password=pw
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${home}/%u
}
`);
  const S = (args: string[], input?: string) => {
    const r = spawnSync(process.execPath, [sealadmJs, '-c', conf, ...args], { input, encoding: 'utf8', timeout: 60_000, env: { ...process.env, TMPDIR: tmp } });
    writeFileSync(log, r.stderr, { flag: 'a' }); // sealadm logs to stderr (log_path is the server's)
    return r;
  };
  const PW = ['-o', 'plugin/mail_crypt_private_password=s3cret'];
  const U = 'max@example.org';
  assert.equal(S([...PW, 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']).status, 0);
  const msg = (i: number) => `From: ${MARKERS[0]} <z@example.org>
To: ${U}
Subject: ${MARKERS[1]} number ${i}
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain

Hello, ${MARKERS[2]} here.
--b1
Content-Type: application/pdf; name="${MARKERS[3]}.pdf"
Content-Disposition: attachment; filename="${MARKERS[3]}.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IK
--b1--
`;
  for (let i = 0; i < 3; i++) assert.equal(S(['save', '-u', U], msg(i)).status, 0, 'delivery with public keys only');
  assert.equal(S(['mailbox', 'create', '-u', U, 'Archive']).status, 0);
  // read everything with the password: key cache, index, status cache get filled
  const r = S([...PW, '-f', 'flow', 'fetch', '-u', U, 'text hdr.subject modseq', 'all']);
  assert.equal(r.status, 0, r.stderr);
  for (const m of MARKERS) assert.ok(r.stdout.includes(m), `sanity: ${m} is readable with the password`);
  assert.match(S([...PW, '-f', 'flow', 'fetch', '-u', U, 'uid', 'subject', MARKERS[1]]).stdout, /uid=1/);
  assert.equal(S([...PW, 'index', '-u', U, '*']).status, 0);
  writeFileSync(log, '', { flag: 'a' });
  const hits: string[] = [];
  const files = [...filesUnder(home), ...filesUnder(tmp), log];
  assert.ok(files.some((f) => f.endsWith('sealmail.keycache')), 'the key cache exists (and must be sealed)');
  assert.ok(files.some((f) => f.endsWith('sealmail.modseq')), 'the modseq file exists (and must be sealed)');
  for (const f of files) {
    const data = readFileSync(f);
    for (const m of MARKERS) if (data.includes(m)) hits.push(`${m} in ${f}`);
  }
  assert.deepEqual(hits, []);
});
