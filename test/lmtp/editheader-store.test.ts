/**
 * RFC 5293 editheader, the stored bytes: each script runs through
 * Pigeonhole's sieve-test with -e -l (it executes the actions and stores
 * the edited message in a Maildir) and through a Sealmail LMTP delivery;
 * the files stored in every folder must agree byte for byte once
 * Dovecot's LMTP trace fields (Return-Path, Delivered-To, Received), which
 * sieve-test does not add, are taken out. Covers the encoding and folding of
 * added fields, deletion by index and pattern, an action invoked before the
 * edit storing the header as it was then, and a failed script storing the
 * message as it came.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { lmtpSieveConfig } from '../helpers/config-text.js';
import { tempDir } from '../helpers/tmp.js';
import { sieveOracle } from '../helpers/sieve-oracle.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { deliver } from '../../src/lmtp/delivery.js';
import { MessageSpool, type SpooledMessage } from '../../src/lmtp/data-spool.js';

const MSG = 'From: Alice <a@example.net>\nTo: jo@example.org\nSubject: hi there\nX-Old: one\nX-Old: two\nX-Old: three\nMessage-ID: <1@example.net>\n\nbody line\nsecond line\n';
const E = 'require ["editheader","fileinto","mailbox","variables"];\n';

const CASES: { name: string; script: string }[] = [
  {
    name: 'added fields encoded and folded, deletions by index and pattern',
    script: E + 'addheader "x-new-HEADER" "Grüße aus Köln und eine sehr lange Zeile mit vielen Wörtern die gefaltet werden muss damit es passt";\n'
      + 'addheader :last "X-Long" "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr ssss tttt";\n'
      + 'addheader :last "X-CJK" "日本語のテキストはとても長いのでいくつかの行に分けてエンコードされなければなりません日本語のテキスト";\n'
      + 'addheader :last "X-Lines" "first line\nsecond line";\n'
      + 'addheader :last "X-Nospace" "' + 'x'.repeat(100) + ' tail";\n'
      + 'deleteheader :index 2 "X-Old";\n'
      + 'deleteheader :matches "Subject" "hi*";\n'
      + 'if header :is "x-new-header" "Grüße aus Köln und eine sehr lange Zeile mit vielen Wörtern die gefaltet werden muss damit es passt" { fileinto :create "Seen"; }\n',
  },
  {
    name: 'fileinto before the edit stores the header as it was',
    script: E + 'fileinto :create "Before";\naddheader "X-After" "1";\ndeleteheader :index 1 :last "X-Old";\nkeep;\n',
  },
  {
    name: 'keep before the edit, fileinto after it',
    script: E + 'keep;\naddheader :last "X-Late" "late";\nfileinto :create "Late";\n',
  },
  {
    name: 'a failed script stores the message as it came',
    script: E + 'addheader "X-A" "1";\nset "n" "a b";\naddheader "${n}" "v";\n',
  },
];

async function spooled(text: string, dir: string): Promise<SpooledMessage> {
  const spool = new MessageSpool(dir, (m) => { throw new Error(m); });
  spool.write(Buffer.from(text));
  return spool.finish();
}

/** Folder name → the stored messages (sorted), INBOX as "INBOX". */
function stored(maildir: string, mask: boolean): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const read = (d: string, name: string) => {
    const files = ['new', 'cur'].flatMap((s) => (existsSync(join(d, s)) ? readdirSync(join(d, s)).map((f) => join(d, s, f)) : []));
    if (files.length) out[name] = files.map((f) => { const m = readFileSync(f, 'latin1'); return mask ? withoutTrace(m) : m; }).sort();
  };
  if (!existsSync(maildir)) return out;
  read(maildir, 'INBOX');
  for (const e of readdirSync(maildir)) if (e.startsWith('.') && e !== '.' && e !== '..') read(join(maildir, e), e.slice(1));
  return out;
}

/** Dovecot LMTP's own fields taken out of the header (with their continuation lines). */
function withoutTrace(m: string): string {
  const end = m.indexOf('\n\n');
  const lines = m.slice(0, end + 1).split(/(?<=\n)/);
  let skip = false;
  const kept = lines.filter((l) => {
    if (l[0] === ' ' || l[0] === '\t') return !skip;
    skip = /^(Return-Path|Delivered-To|Received):/i.test(l);
    return !skip;
  });
  return kept.join('') + m.slice(end + 1);
}

test('editheader: what Sealmail LMTP stores equals what Pigeonhole stores', async (t) => {
  const oracle = sieveOracle(t);
  if (!oracle) return;
  const dir = tempDir(t, 'lmtp-editheader');
  mkdirSync(join(dir, 'home'));
  const config = await lmtpSieveConfig(dir, `  sieve_before = ~/rules.sieve
  sieve_extensions = +editheader
`);
  const auth = new AuthEngine(config, 'lmtp');
  t.after(() => auth.close());
  let i = 0;
  for (const c of CASES) {
    await t.test(c.name, async () => {
      const n = i++;
      const loc = join(oracle.dir, `store${n}`);
      mkdirSync(loc, { mode: 0o777 });
      chmodSync(loc, 0o777);
      const r = oracle.run(c.script, MSG, { extensions: '+editheader', location: `maildir:${loc}` });
      assert.ok(r.stderr.includes('final result:'), r.stderr);
      const user = `u${n}@example.org`;
      const home = join(dir, 'home', user);
      mkdirSync(home, { recursive: true });
      writeFileSync(join(home, 'rules.sieve'), c.script);
      const base = { config, auth, user, detail: '', rcpt: user, mailFrom: 'x@example.net', heloName: 'mx', rip: '127.0.0.1', sessionId: `T${n}`, single: true };
      assert.deepEqual(await deliver({ ...base, message: await spooled(MSG, dir) }), { ok: true });
      const want = stored(loc, false);
      assert.ok(Object.keys(want).length, r.stderr);
      assert.deepEqual(stored(join(home, 'Maildir'), true), want);
    });
  }
});
