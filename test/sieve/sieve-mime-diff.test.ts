/**
 * Differential tests for RFC 5703 (mime, foreverypart, extracttext) against
 * Pigeonhole's sieve-test: the same actions for the same script and
 * message (folder names carry what the script saw: part types, parameters,
 * extracted text), and the same compile errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SieveCompileError, compileScript } from '../../src/sieve/compile.js';
import { runScript } from '../../src/sieve/interpreter.js';
import { parseMessage } from '../../src/sieve/message.js';
import { sieveOracle, oracleActions, oracleCompileErrors, resultActions } from '../helpers/sieve-oracle.js';

const MP = 'From: a@example.net\r\nTo: b@example.org\r\nSubject: mp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\npreamble\r\n'
  + '--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello text\r\n'
  + '--XX\r\nContent-Type: multipart/alternative; boundary="YY"\r\n\r\n--YY\r\nContent-Type: text/html; charset="iso-8859-1"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<html><head><style>p {x}</style><script>alert(1)</script></head><!-- hid -->\r\n<p>Hi <b>there</b> &amp; caf=E9 &#x263a; &lt;ok&gt;</p><blockquote>quoted</blockquote>end\r\n'
  + '--YY\r\nContent-Type: Application/PDF; name="a.pdf"\r\nContent-Disposition: attachment; filename*=utf-8\'\'r%C3%A9sum%C3%A9.pdf; size=10\r\nContent-Transfer-Encoding: base64\r\n\r\nSlZCRVJpMA==\r\n--YY--\r\n'
  + '--XX\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.com\r\nTo: x@example.com\r\nSubject: inner\r\nContent-Type: text/plain; charset=us-ascii; format=flowed\r\n\r\ninner body\r\n'
  + '--XX--\r\nepilogue\r\n';
const PLAIN = 'From: Alice <alice@example.net>\r\nTo: john@example.org\r\nSubject: plain\r\n\r\nJust text.\r\n';
const NESTED_LAST = 'From: a@example.net\r\nContent-Type: multipart/mixed; boundary="A"\r\n\r\n--A\r\nContent-Type: multipart/related; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nin b\r\n--B--\r\n--A\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\n\r\npng\r\n--A--\r\n';

const FP = 'require ["foreverypart","mime","variables","fileinto","extracttext"];\n';
interface Case { name: string; script: string; msg?: string; pigeonholeFails?: boolean }
const CASES: Case[] = [
  { name: 'foreverypart visits every part with its type', script: FP + 'set "n" "";\nforeverypart {\n  set "n" "${n}x";\n  if header :mime :contenttype :matches "Content-Type" "*" { fileinto "p${n}.${1}"; } else { fileinto "p${n}.none"; }\n}\n' },
  { name: ':type and :subtype', script: FP + 'foreverypart { if header :mime :type :is "content-type" "application" { if header :mime :subtype :matches "content-type" "*" { fileinto "sub.${1}"; } } }\n' },
  { name: ':param with RFC 2231 decoding', script: FP + 'foreverypart { if header :mime :param "filename" :matches "content-disposition" "*" { if string :is "${1}" "" { } else { fileinto "f.${1}"; } } }\n' },
  { name: ':param several names', script: FP + 'foreverypart { if header :mime :param ["size","filename"] :matches "Content-Disposition" "*" { if not string "${1}" "" { fileinto "s.${1}"; } } }\n' },
  { name: ':param charset of the message', script: FP + 'if header :mime :param "boundary" :matches "content-type" "*" { fileinto "b.${1}"; }\n' },
  { name: ':type of a non-MIME header is empty', script: FP + 'if header :mime :type :is "Subject" "" { fileinto "empty"; }\n' },
  { name: ':type of Content-Disposition, :subtype empty', script: FP + 'foreverypart { if header :mime :type :is "content-disposition" "attachment" { if header :mime :subtype :is "content-disposition" "" { fileinto "att"; } } }\n' },
  { name: ':anychild outside a loop sees every part', script: FP + 'if header :mime :anychild :contains "content-type" "pdf" { fileinto "haspdf"; }\nif header :mime :contains "content-type" "pdf" { fileinto "toplevel"; }\n' },
  { name: ':anychild inside a loop', script: FP + 'set "n" "";\nforeverypart { set "n" "${n}x"; if header :mime :anychild :contains "content-type" "html" { fileinto "h${n}"; } }\n' },
  { name: ':anychild runs past the subtree of a last child', msg: NESTED_LAST, script: FP + 'set "n" "";\nforeverypart { set "n" "${n}x"; if header :mime :anychild :contains "content-type" "png" { fileinto "png${n}"; } }\n' },
  { name: 'nested foreverypart walks the children', script: FP + 'set "n" "";\nforeverypart { set "n" "${n}o"; foreverypart { set "n" "${n}i"; } }\nfileinto "${n}";\n' },
  { name: 'nested foreverypart of a last child', msg: NESTED_LAST, script: FP + 'set "n" "";\nforeverypart { set "n" "${n}o"; foreverypart { if header :mime :type "content-type" "image" { set "n" "${n}P"; } else { set "n" "${n}i"; } } }\nfileinto "n${n}";\n' },
  // Pigeonhole 0.5.19 fails such a script at run time ("corrupt binary", implicit keep); Sealmail runs it as RFC 5703 says
  { name: 'nested foreverypart inside an if', pigeonholeFails: true, script: FP + 'set "n" "";\nforeverypart { if header :mime :subtype "content-type" "alternative" { foreverypart { set "n" "${n}i"; } } }\nfileinto "n${n}";\n' },
  { name: 'break ends the loop', script: FP + 'set "n" "";\nforeverypart { set "n" "${n}x"; if header :mime :type "content-type" "text" { break; } }\nfileinto "${n}";\n' },
  { name: 'break :name ends the outer loop', script: FP + 'set "n" "";\nforeverypart :name "outer" { set "n" "${n}o"; foreverypart { set "n" "${n}i"; break :name "outer"; } }\nfileinto "${n}";\n' },
  { name: 'break without name ends the inner loop', script: FP + 'set "n" "";\nforeverypart :name "outer" { set "n" "${n}o"; foreverypart { set "n" "${n}i"; break; } }\nfileinto "${n}";\n' },
  { name: 'exists :mime in the loop', script: FP + 'set "n" "";\nforeverypart { set "n" "${n}x"; if exists :mime "content-disposition" { fileinto "d${n}"; } }\n' },
  { name: 'exists :mime :anychild', script: FP + 'if exists :mime :anychild "content-transfer-encoding" { fileinto "cte"; }\nif exists :mime "content-transfer-encoding" { fileinto "top"; }\n' },
  { name: 'address :mime in an embedded message', script: FP + 'foreverypart { if address :mime :is "from" "inner@example.com" { fileinto "inner"; } }\n' },
  { name: 'address :mime :anychild', script: FP + 'if address :mime :anychild :domain :is "to" "example.com" { fileinto "any"; }\n' },
  { name: 'extracttext per part', script: FP + 'set "n" "";\nforeverypart { set "n" "${n}x"; extracttext "t"; if not string "${t}" "" { fileinto "${n}:${t}"; } }\n' },
  { name: 'extracttext :first and modifiers', script: FP + 'set "n" "";\nforeverypart { set "n" "${n}x"; extracttext :upper :first 4 "t"; fileinto "${n}:${t}"; }\n' },
  { name: 'extracttext :length', script: FP + 'foreverypart { extracttext :length "t"; fileinto "l${t}"; }\n' },
  { name: 'extracttext of a plain message', msg: PLAIN, script: FP + 'foreverypart { extracttext "t"; fileinto "${t}"; }\n' },
  { name: 'foreverypart on a plain message', msg: PLAIN, script: FP + 'set "n" "";\nforeverypart { set "n" "${n}x"; if header :mime :contenttype "content-type" "" { fileinto "none${n}"; } }\n' },
  { name: 'header :mime without options is the header', msg: PLAIN, script: FP + 'if header :mime :is "subject" "plain" { fileinto "same"; }\n' },
  { name: ':count over parts', script: 'require ["mime","relational","comparator-i;ascii-numeric","fileinto"];\nif header :mime :anychild :count "eq" :comparator "i;ascii-numeric" "content-type" "7" { fileinto "seven"; }\n' },
  // compile errors, Pigeonhole's texts
  { name: 'err :type without :mime', script: 'require "mime";\nif header :type "content-type" "text" { keep; }\n' },
  { name: 'err two mime options', script: 'require "mime";\nif header :mime :type :subtype "content-type" "text" { keep; }\n' },
  { name: 'err :type on address', script: 'require "mime";\nif address :mime :type "from" "x" { keep; }\n' },
  { name: 'err :param eats the key list', script: 'require "mime";\nif header :mime :param "content-type" "text" { keep; }\n' },
  { name: 'err :anychild without :mime', script: 'require "mime";\nif exists :anychild "x" { keep; }\n' },
  { name: 'err :mime not required', script: 'if header :mime "content-type" "text" { keep; }\n' },
  { name: 'err break outside a loop', script: 'require "foreverypart";\nbreak;\nforeverypart :name "a" {\n  break :name "b";\n}\n' },
  { name: 'err nesting limit', script: 'require "foreverypart";\nforeverypart { foreverypart { foreverypart { foreverypart {\nforeverypart { keep; } } } } }\n' },
  { name: 'err extracttext outside a loop', script: 'require ["variables","extracttext","foreverypart"];\nextracttext "x";\n' },
  { name: 'err extracttext without variables', script: 'require ["foreverypart",\n"extracttext"];\nforeverypart { extracttext "x"; }\n' },
  { name: 'err extracttext without foreverypart', script: 'require ["extracttext","variables"];\nforeverypart { extracttext "x"; }\nfrob;\n' },
  { name: 'extracttext required alone compiles', script: 'require ["extracttext"];\n' },
  { name: 'err extracttext :first string', script: 'require ["foreverypart","variables","extracttext"];\nforeverypart { extracttext :first "3" "x"; }\n' },
  { name: 'err foreverypart without block', script: 'require "foreverypart";\nforeverypart;\n' },
];

test('RFC 5703 mime/foreverypart/extracttext agree with Pigeonhole sieve-test', async (t) => {
  const oracle = sieveOracle(t);
  if (!oracle) return;
  for (const c of CASES) {
    await t.test(c.name, async () => {
      const msg = c.msg ?? MP;
      const r = oracle.run(c.script, msg);
      const errors = oracleCompileErrors(r.stderr);
      if (errors.length) {
        assert.throws(() => compileScript(c.script, 's'), (e: unknown) => {
          assert.ok(e instanceof SieveCompileError);
          assert.deepEqual(e.errors, errors);
          return true;
        });
        return;
      }
      const ours = await runScript(compileScript(c.script, 's'), { message: parseMessage(Buffer.from(msg, 'latin1')), envelope: { from: 'sender@example.net', to: 'john@example.org' } });
      if (c.pigeonholeFails) {
        assert.match(r.stderr, /corrupt binary deleted/);
        assert.deepEqual(resultActions(ours), ['store nii']);
        return;
      }
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(resultActions(ours), oracleActions(r.stdout), r.stdout);
    });
  }
});

test('foreverypart reads the whole message when delivery gave only its header', async () => {
  // LMTP hands Sieve the header and a way to load the rest from its spool (message.ts MessageSource)
  const raw = Buffer.from(MP, 'latin1');
  let loads = 0;
  const head = raw.subarray(0, raw.indexOf('\r\n\r\n') + 4);
  const msg = parseMessage({ head, size: raw.length, load: async () => { loads++; return raw; } });
  const script = compileScript(FP + 'foreverypart { if header :mime :type "content-type" "application" { extracttext "t"; fileinto "${t}"; } }\n', 's');
  const r = await runScript(script, { message: msg, envelope: { from: 'a@example.net', to: 'b@example.org' } });
  assert.deepEqual(resultActions(r), ['store JVBERi0']);
  assert.equal(loads, 1);
});
