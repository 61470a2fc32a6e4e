/**
 * MIME corpus differential (RFC 3501 §6.4.5, RFC 3516): every message of
 * test/fixtures/imap-diff/corpus is loaded into one mailbox, and for every
 * part of every message — multipart children, the encapsulated message of a
 * message/rfc822 part and the parts inside it, one number past the last
 * child — the test fetches BODY[part], BODY[part.MIME], BODY[part.HEADER],
 * BODY[part.TEXT], BINARY[part] and BINARY.SIZE[part] (BINARY.SIZE only of
 * single parts of messages stored with CRLF: Dovecot's BINARY.SIZE of a
 * decoded part of an LF-stored message is not always the size of what it
 * sends, a known difference, 13-binary-size-multipart.imap),
 * plus BODYSTRUCTURE, HEADER, TEXT and BINARY[TEXT] of the message, one
 * FETCH per part, against the real Dovecot 2.3 and Sealmail; the
 * transcripts must be identical byte for byte (test/helpers/imap-diff.ts
 * normalises nothing a FETCH sends). The part list comes from Sealmail's
 * parser, and BODYSTRUCTURE is compared first, so a part Sealmail does not
 * see shows up as a BODYSTRUCTURE difference.
 *
 * SEALDIFF_OUT=DIR writes both transcripts (mime-corpus.dovecot/.sealmail).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import {
  compareTranscripts, corpusDir, corpusFile, fixedUidValidities, normalise, parseScript, runScript, writeMaildir,
} from '../../helpers/imap-diff.js';
import { parseMime, type MimePart } from '../../../src/mailstore/mime/parts.js';

/** Section paths of every part, as IMAP numbers them (a message/rfc822 part's inner parts below its number). */
function partPaths(root: MimePart): { path: string; single: boolean; rfc822: boolean }[] {
  const out: { path: string; single: boolean; rfc822: boolean }[] = [];
  const isMulti = (p: MimePart) => p.contentType.type === 'multipart' && !p.truncated;
  // the parts inside a message: its children, or its body as part 1
  const inside = (msg: MimePart, prefix: string): void => {
    if (isMulti(msg)) {
      msg.children.forEach((c, i) => visit(c, `${prefix}${i + 1}`));
      out.push({ path: `${prefix}${msg.children.length + 1}`, single: true, rfc822: false }); // one past the last
    } else visit(msg, `${prefix}1`);
  };
  const visit = (p: MimePart, path: string): void => {
    out.push({ path, single: !isMulti(p) && !p.message, rfc822: !!p.message });
    if (isMulti(p)) {
      p.children.forEach((c, i) => visit(c, `${path}.${i + 1}`));
    } else if (p.message) inside(p.message, `${path}.`);
  };
  inside(root, '');
  return out;
}

/** Corpus messages Dovecot cannot BINARY-decode (invalid quoted-printable or base64) without ending the session (see dovecot-compat.md). */
const NO_BINARY = /-invalid/;

function corpusScript(): ReturnType<typeof parseScript> {
  const files = readdirSync(corpusDir).filter((f) => f.endsWith('.eml')).sort();
  const lines = ['# generated: every part of every corpus message', ...files.map((f) => `@load INBOX ${f}`), 'a1 SELECT INBOX'];
  files.forEach((f, i) => {
    const seq = i + 1;
    // Dovecot ends the session (`* BYE … Internal error`) on BINARY of invalid quoted-printable or base64: BODY only there
    const binary = !NO_BINARY.test(f);
    const crlfStored = corpusFile(f).includes('\r\n');
    lines.push(`m${seq} FETCH ${seq} (BODYSTRUCTURE BODY.PEEK[HEADER] BODY.PEEK[TEXT]${binary ? ' BINARY.PEEK[TEXT]' : ''})`);
    for (const [k, p] of partPaths(parseMime(corpusFile(f))).entries()) {
      const items = [`BODY.PEEK[${p.path}]`, `BODY.PEEK[${p.path}.MIME]`, `BODY.PEEK[${p.path}.HEADER]`, `BODY.PEEK[${p.path}.TEXT]`];
      if (binary) items.push(`BINARY.PEEK[${p.path}]`);
      if (binary && p.single && crlfStored) items.push(`BINARY.SIZE[${p.path}]`);
      if (binary && p.rfc822) items.push(`BINARY.PEEK[${p.path}.TEXT]`);
      lines.push(`p${seq}x${k} FETCH ${seq} (${items.join(' ')})`);
    }
  });
  return parseScript('mime-corpus (generated)', lines.join('\n'));
}

test('MIME corpus: every part and its HEADER/TEXT/MIME sections and BINARY, byte for byte as Dovecot', async (t) => {
  const script = corpusScript();
  const port = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    protocols: 'imap',
    extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n`,
  });
  if (!dv) return;
  const seal = await startSealmail(t);
  const user = 'corpus@example.org';
  writeMaildir(dv.home(user), script);
  writeMaildir(seal.home(user), script);
  const theirs = await runScript(script, { name: 'Dovecot', port, user, password: 'pass' });
  const ours = await runScript(script, { name: 'Sealmail', port: seal.imapPort, user, password: 'pass' });
  const fixed = fixedUidValidities(script);
  const [a, b] = [normalise(theirs, fixed), normalise(ours, fixed)];
  const outDir = process.env.SEALDIFF_OUT;
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'mime-corpus.dovecot'), `${a.join('\n')}\n`, 'latin1');
    writeFileSync(join(outDir, 'mime-corpus.sealmail'), `${b.join('\n')}\n`, 'latin1');
  }
  // the test must have fetched what it says: a part FETCH for every message at least
  assert.ok(script.steps.length > 100, `only ${script.steps.length} commands generated`);
  const report = compareTranscripts(script, a, b, ['Dovecot', 'Sealmail']);
  if (report) assert.fail(report);
});
