/**
 * Differential tests: every script/message pair runs through Pigeonhole's
 * `sieve-test` (the real Dovecot 2.3 Sieve engine) and through Sealmail's
 * compiler + interpreter; the resulting actions (folders, flags, redirect,
 * reject, vacation, discard, implicit keep) and compile errors must agree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';
import { oracleActions } from '../helpers/sieve-oracle.js';
import { SieveCompileError, type CompiledScript } from '../../src/sieve/compile.js';
import { includeLoader, loadWithIncludes, type IncludeDirs } from '../../src/sieve/deliver.js';
import { runScript, SieveRuntimeError } from '../../src/sieve/interpreter.js';
import { parseMessage } from '../../src/sieve/message.js';
import { extensionSwitches } from '../../src/sieve/extensions.js';
import { environmentItems } from '../../src/sieve/environment.js';

/** Plugin settings both engines run with: the off-by-default RFC 5235 tests and RFC 5293 editheader switched on, configured. */
const SETTINGS: Record<string, string> = {
  sieve_extensions: '+spamtest +spamtestplus +virustest +editheader',
  sieve_spamtest_status_type: 'score', sieve_spamtest_status_header: 'X-Spam-Score', sieve_spamtest_max_value: '15',
  sieve_virustest_status_type: 'text', sieve_virustest_status_header: 'X-Virus-Scan: ^([a-z]+)',
  sieve_virustest_text_value1: 'clean', sieve_virustest_text_value5: 'infected',
};
const OPTS = { enabled: extensionSwitches(SETTINGS).enabled };

const SPAM = 'From: Spammer <spam@bad.example>\r\nTo: John <john@example.org>\r\nSubject: Buy now\r\nX-Spam-Flag: YES\r\nX-Spam: Yes\r\nX-Spam-Score: 12\r\nMessage-ID: <1@bad.example>\r\n\r\nCheap stuff\r\n';
const HAM = 'From: "Alice A." <alice+lists@friends.example>\r\nTo: john@example.org, Bob <bob@example.org>\r\nCc: team: carol@example.org, dave@example.org;\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= [acme-users] meeting\r\nX-Spam-Flag: NO\r\nX-Spam-Score: 3\r\nList-Id: Acme users <acme-users.lists.example>\r\nDate: Mon, 23 Nov 2026 05:00:00 +0000\r\n\r\nHello John,\r\nsee you at the meeting.\r\n';

// RFC 5260 date/index: several Received fields (newest first), a Date in +0300, an obsolete-zone Resent-Date, a broken X-Date.
const DATED = 'Received: from mx2.example.org by mx.example.org; Tue, 24 Nov 2026 01:02:03 +0100\r\nReceived: from relay.example.net by mx2.example.org; Mon, 23 Nov 2026 23:59:58 -0800\r\nReceived: from client by relay.example.net; 3 Feb 2026 04:05:06 +0000\r\nFrom: Alice <alice@friends.example>\r\nTo: john@example.org\r\nCc: carol@example.org\r\nCc: dave@example.org\r\nDate: Sat, 7 Mar 2026 05:00:09 +0300\r\nResent-Date: 1 Jan 26 12:00 EST\r\nX-Date: yesterday\r\nSubject: dated\r\n\r\nbody\r\n';
const DATE_PARTS = ['year', 'month', 'day', 'date', 'julian', 'hour', 'minute', 'second', 'time', 'iso8601', 'std11', 'zone', 'weekday'];

// A long header for the catastrophic patterns (Pigeonhole's glibc matcher answers in milliseconds, so must Sealmail's).
const LONG = `From: a@example.net\r\nTo: john@example.org\r\nSubject: ${'a'.repeat(5000)}!\r\nX-Tag: aaaa\r\n\r\nbody\r\n`;
const RX = 'require ["regex","fileinto","variables"];\n';

interface Case { name: string; script: string; msg?: string; from?: string; to?: string }

const CASES: Case[] = [
  { name: 'ispmail spam-to-folder', script: 'require ["fileinto"];\nif header :contains "X-Spam-Flag" "YES" {\n  fileinto "Junk";\n}\n' },
  { name: 'ispmail spam-to-folder ham', msg: HAM, script: 'require ["fileinto"];\nif header :contains "X-Spam-Flag" "YES" {\n  fileinto "Junk";\n}\n' },
  { name: 'spam :is + stop', script: 'require ["fileinto"];\nif header :is "X-Spam" "Yes" { fileinto "INBOX.Junk"; stop; }\nfileinto "Other";\n' },
  { name: ':is is exact', script: 'require "fileinto";\nif header :is "X-Spam" "Ye" { fileinto "Junk"; }\n' },
  { name: ':is case-insensitive by default', script: 'require "fileinto";\nif header :is "x-spam" "YES" { fileinto "Junk"; }\n' },
  { name: 'i;octet is case-sensitive', script: 'require "fileinto";\nif header :is :comparator "i;octet" "X-Spam" "YES" { fileinto "Junk"; }\n' },
  { name: 'matches wildcard', script: 'require "fileinto";\nif header :matches "Subject" "Buy*" { fileinto "Shop"; }\n' },
  { name: 'matches ? wildcard', script: 'require "fileinto";\nif header :matches "Subject" "Bu? now" { fileinto "Shop"; }\n' },
  { name: 'numeric spam score', script: 'require ["fileinto","relational","comparator-i;ascii-numeric"];\nif header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "10" { fileinto "Junk"; }\n' },
  { name: 'numeric spam score low', msg: HAM, script: 'require ["fileinto","relational","comparator-i;ascii-numeric"];\nif header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "10" { fileinto "Junk"; } else { fileinto "Ham"; }\n' },
  { name: 'count recipients', msg: HAM, script: 'require ["fileinto","relational","comparator-i;ascii-numeric"];\nif address :count "ge" :comparator "i;ascii-numeric" ["to","cc"] "4" { fileinto "Many"; }\n' },
  { name: 'address :domain', msg: HAM, script: 'require "fileinto";\nif address :domain :is "from" "friends.example" { fileinto "Friends"; }\n' },
  { name: 'address :localpart', msg: HAM, script: 'require "fileinto";\nif address :localpart :is "from" "alice+lists" { fileinto "A"; }\n' },
  { name: 'subaddress :user/:detail', msg: HAM, script: 'require ["fileinto","subaddress"];\nif address :user "from" "alice" { if address :detail "from" "lists" { fileinto "Lists"; } }\n' },
  { name: 'address in group', msg: HAM, script: 'require "fileinto";\nif address :is "cc" "dave@example.org" { fileinto "Dave"; }\n' },
  { name: 'envelope from', script: 'require ["envelope","fileinto"];\nif envelope :is "from" "sender@example.net" { fileinto "Env"; }\n', from: 'sender@example.net' },
  { name: 'envelope to :domain', script: 'require ["envelope","fileinto"];\nif envelope :domain :is "to" "example.org" { fileinto "Dom"; }\n' },
  { name: 'exists', script: 'require "fileinto";\nif exists ["X-Spam-Flag","Message-ID"] { fileinto "Both"; }\n' },
  { name: 'not exists', script: 'require "fileinto";\nif not exists "List-Id" { fileinto "NoList"; }\n' },
  { name: 'size over', script: 'require "fileinto";\nif size :over 100 { fileinto "Big"; }\n' },
  { name: 'size under K', script: 'require "fileinto";\nif size :under 1K { fileinto "Small"; }\n' },
  { name: 'allof/anyof', msg: HAM, script: 'require "fileinto";\nif allof (exists "List-Id", anyof (header :contains "Subject" "nothing", address :is "to" "bob@example.org")) { fileinto "X"; }\n' },
  { name: 'elsif chain', msg: HAM, script: 'require "fileinto";\nif header :is "X-Spam-Flag" "YES" { fileinto "Junk"; }\nelsif header :contains "List-Id" "acme" { fileinto "Acme"; }\nelse { keep; }\n' },
  { name: 'discard', script: 'discard;\n' },
  { name: 'discard then keep', script: 'discard;\nkeep;\n' },
  { name: 'redirect', script: 'redirect "other@example.net";\n' },
  { name: 'redirect :copy + fileinto :copy', script: 'require ["copy","fileinto"];\nredirect :copy "other@example.net";\nfileinto :copy "Archive";\n' },
  { name: 'reject', script: 'require "reject";\nif header :contains "Subject" "Buy" { reject "No thanks"; }\n' },
  { name: 'imap4flags addflag + fileinto', script: 'require ["imap4flags","fileinto"];\naddflag "\\\\Seen";\naddflag ["$Junk", "\\\\Flagged"];\nfileinto "Junk";\n' },
  { name: 'imap4flags removeflag + implicit keep', script: 'require ["imap4flags"];\nsetflag "\\\\Seen \\\\Flagged";\nremoveflag "\\\\Seen";\n' },
  { name: 'fileinto :flags', script: 'require ["imap4flags","fileinto"];\nfileinto :flags "\\\\Seen" "Read";\n' },
  { name: 'keep :flags', script: 'require ["imap4flags"];\nkeep :flags ["\\\\Answered"];\n' },
  { name: 'hasflag', script: 'require ["imap4flags","fileinto"];\naddflag "\\\\Flagged";\nif hasflag :is "\\\\flagged" { fileinto "F"; }\n' },
  { name: 'variables from :matches', msg: HAM, script: 'require ["variables","fileinto"];\nif header :matches "List-Id" "*<*.lists.example>" { fileinto "lists.${2}"; }\n' },
  { name: 'variables set modifiers', script: 'require ["variables","fileinto"];\nset :lower :upperfirst "n" "jUNK";\nset "x" "${n}-${n}";\nif string :is "${x}" "Junk-Junk" { fileinto "${x}"; }\n' },
  { name: 'variables :length', script: 'require ["variables","fileinto"];\nset :length "l" "abcdef";\nfileinto "len${l}";\n' },
  { name: 'mailbox :create', script: 'require ["fileinto","mailbox"];\nfileinto :create "New/Sub";\n' },
  { name: 'duplicate fileinto merged', script: 'require "fileinto";\nfileinto "A";\nfileinto "A";\nfileinto "INBOX";\n' },
  { name: 'vacation', msg: SPAM, to: 'john@example.org', script: 'require "vacation";\nvacation :days 3 :subject "Away" "I am away";\n' },
  { name: 'encoded subject decoded', msg: HAM, script: 'require "fileinto";\nif header :contains "Subject" "Grüße" { fileinto "Umlaut"; }\n' },
  { name: 'multi-line text:', script: 'require "fileinto";\nif header :contains "Subject" text:\nBuy\n.\n{ fileinto "T"; }\n' },
  { name: 'comments', script: '# comment\nrequire /* inline */ "fileinto";\nfileinto "C"; # trailing\n' },
  { name: 'body :contains', script: 'require ["body","fileinto"];\nif body :raw :contains "Cheap" { fileinto "B"; }\n' },
  { name: 'regex', msg: HAM, script: 'require ["regex","fileinto","variables"];\nif header :regex "Subject" "\\\\[([a-z-]+)\\\\]" { fileinto "R-${1}"; }\n' },
  // :regex is POSIX ERE as glibc regcomp/regexec runs it for Pigeonhole; ${N} are the submatches
  { name: 'regex address submatches', msg: HAM, script: RX + 'if address :regex "from" "^(.*)\\+(.*)@(.*)$" { fileinto "r.${1}.${2}.${3}"; }\n' },
  { name: 'regex leftmost-longest', script: RX + 'if header :regex "Subject" "(Bu|Buy)( now|y now)?" { fileinto "r.${1}.${2}"; }\n' },
  { name: 'regex alternation submatches', script: RX + 'if string :regex "abcd" "(a|ab)(c|bcd)(d*)" { fileinto "r.${1}.${2}.${3}x"; }\n' },
  { name: 'regex repeated group keeps last', script: RX + 'if string :regex "ab" "((a)|b)+" { fileinto "r.${1}.${2}"; }\n' },
  { name: 'regex empty iteration not taken', script: RX + 'if string :regex "a" "(a|()){1,2}" { fileinto "r.${1}x"; }\n' },
  { name: 'regex star of star', script: RX + 'if string :regex "b" "(a*)*" { fileinto "r.${0}.${1}x"; }\n' },
  { name: 'regex classes', msg: HAM, script: RX + 'if header :regex "X-Spam-Score" "^[[:digit:]]+$" { if header :regex "Subject" "[[:space:]]([[:alpha:]]+)$" { fileinto "c.${1}"; } }\n' },
  { name: 'regex bracket edge cases', script: RX + 'if string :regex "a]-b" "[]a]([-x]+)[^[:space:]]" { fileinto "b${1}"; }\n' },
  { name: 'regex anchors mid-pattern', script: RX + 'if header :regex "Subject" "x|^Buy" { fileinto "A"; }\n' },
  { name: 'regex icase default', script: RX + 'if header :regex "Subject" "^BUY (N)OW$" { fileinto "I${1}"; }\n' },
  { name: 'regex i;octet case-sensitive', script: RX + 'if header :regex :comparator "i;octet" "Subject" "^BUY" { fileinto "O"; }\n' },
  { name: 'regex bounded repetition', script: RX + 'if string :regex "aaaaa" "^(a{2,3})(a{1,})$" { fileinto "n${1}.${2}"; }\n' },
  { name: 'regex {,n} and {m,}', script: RX + 'if string :regex "xaaaay" "a{,2}(a{2,})y" { fileinto "n${0}.${1}"; }\n' },
  { name: 'regex GNU escapes', script: RX + 'if string :regex "foo_bar baz" "\\<(\\w+)\\>$" { fileinto "w${1}"; }\n' },
  { name: 'regex back reference', script: RX + 'if string :regex "abcabc" "^(abc)\\1$" { fileinto "b${1}"; }\n' },
  { name: 'regex dot matches any byte', script: RX + 'if string :regex "a\tb" "^a.b$" { fileinto "T"; }\n' },
  { name: 'regex over bytes as in the C locale', script: RX + 'if string :regex "üüü" "^ü+$" { fileinto "U"; }\nif string :regex "aü" "^a.$" { fileinto "dot1"; }\nif string :regex "aü" "^a..$" { fileinto "dot2"; }\nif string :regex "Ü" "ü" { fileinto "icase"; }\n' },
  { name: 'regex key from a variable', script: RX + 'set "p" "^(Buy) ";\nif header :regex "Subject" "${p}" { fileinto "v${1}"; }\n' },
  { name: 'regex invalid key from a variable never matches', script: RX + 'set "p" "a(";\nif header :regex "Subject" "${p}" { fileinto "never"; }\nfileinto "after";\n' },
  { name: 'regex catastrophic (a+)+$ on 5000 bytes', msg: LONG, script: RX + 'if header :regex "Subject" "^(a+)+$" { fileinto "never"; } else { fileinto "fine"; }\n' },
  { name: 'regex catastrophic nested repetitions', msg: LONG, script: RX + 'if header :regex "Subject" "((a*)*|b)*c" { fileinto "never"; }\nif header :regex "Subject" "(a|aa)+!$" { fileinto "l${1}"; }\n' },
  { name: 'regex big counts', msg: LONG, script: RX + 'if header :regex "Subject" "(a{1,10}){20}!" { fileinto "big${1}"; }\n' },
  { name: 'err regex not required', script: 'if header :regex "Subject" "a" { keep; }\n' },
  { name: 'err regex numeric comparator', script: 'require ["regex","comparator-i;ascii-numeric"];\nif header :regex :comparator "i;ascii-numeric" "Subject" "1" { keep; }\n' },
  ...([['unmatched (', 'a(b'], ['unmatched [', '[a'], ['bracket at end', 'x['], ['nothing to repeat', '*a'], ['repeat an anchor', '^*'], ['unmatched {', 'a{1'],
    ['bad interval', 'a{2,1}'], ['too big', 'a{40000}'], ['bad class', '[[:foo:]]'], ['bad range', '[z-a]'], ['bad collation', '[[.ab.]]'],
    ['trailing backslash', 'a\\'], ['bad back reference', '(a)\\2'], ['first of two keys', '['], ['long key sanitized', '(' + 'x'.repeat(200)]] as const)
    .map(([n, k]) => ({ name: `err regex ${n}`, script: `require "regex";\nif header :regex "Subject" ${n === 'first of two keys' ? '["ok", "a(", "["]' : `"${k}"`} { keep; }\n` })),
  // CR/LF in addresses would be SMTP commands or headers: refused as Pigeonhole refuses them
  { name: 'err redirect with CRLF', script: 'redirect "a@example.net\r\nRCPT TO:<x@y.example>";\n' },
  { name: 'err redirect with encoded CRLF', script: 'require "encoded-character";\nredirect "a@example.net${hex:0d 0a}RCPT TO:<x@y.example>";\n' },
  { name: 'err redirect with LF only', script: 'redirect "a@example.net\nRCPT TO:<x@y.example>";\n' },
  { name: 'err vacation :from with CRLF', script: 'require "vacation";\nvacation :from "me@example.org\r\nBcc: x@y.example" "away";\n' },
  { name: 'err redirect two addresses', script: 'redirect "a@example.net, b@example.net";\n' },
  { name: 'err redirect no domain', script: 'redirect "postmaster";\n' },
  { name: 'err redirect missing >', script: 'redirect "Name <a@example.net";\n' },
  { name: 'err redirect empty', script: 'redirect "";\n' },
  { name: 'err redirect bad domain', script: 'redirect "a@";\n' },
  { name: 'redirect with a name and comment', script: 'redirect "Other (x) <other@example.net>";\n' },
  { name: 'vacation :addresses with CRLF ignored', msg: SPAM, script: 'require "vacation";\nvacation :addresses ["me@example.org\r\nBcc: x"] "away";\n' },
  { name: 'vacation :from with a name', msg: SPAM, script: 'require "vacation";\nvacation :from "Me <me@example.org>" "away";\n' },
  { name: 'encoded-character', script: 'require ["encoded-character","fileinto"];\nif header :contains "Subject" "${hex:42 75}y" { fileinto "${unicode:263a}"; }\n' },
  { name: ':matches captures (shortest first wildcard)', msg: HAM, script: 'require ["variables","fileinto"];\nif header :matches "From" "*<*@*>*" { fileinto "m.${1}.${2}.${3}"; }\n' },
  { name: ':matches * then ?', msg: HAM, script: 'require ["variables","fileinto"];\nif header :matches "Subject" "*[*]*" { fileinto "s.${2}"; }\n' },
  { name: 'string :count', script: 'require ["variables","relational","comparator-i;ascii-numeric","fileinto"];\nif string :count "eq" :comparator "i;ascii-numeric" ["a","","b"] "2" { fileinto "Two"; }\n' },
  { name: 'header :count', msg: HAM, script: 'require ["relational","comparator-i;ascii-numeric","fileinto"];\nif header :count "eq" :comparator "i;ascii-numeric" "To" "1" { fileinto "One"; }\n' },
  { name: 'ascii-numeric non-digit is infinite', script: 'require ["relational","comparator-i;ascii-numeric","fileinto"];\nif header :value "gt" :comparator "i;ascii-numeric" "Subject" "999999" { fileinto "Inf"; }\n' },
  { name: 'vacation defaults', msg: SPAM, script: 'require "vacation";\nvacation "Gone fishing";\n' },
  { name: 'fileinto then discard', script: 'require "fileinto";\nfileinto "A";\ndiscard;\n' },
  { name: 'stop before fileinto', script: 'require "fileinto";\nstop;\nfileinto "A";\n' },
  { name: 'envelope :user/:detail', to: 'john+news@example.org', script: 'require ["envelope","subaddress","fileinto","variables"];\nif envelope :detail :matches "to" "*" { fileinto "d.${1}"; }\n' },
  { name: 'address :all on named From', msg: HAM, script: 'require "fileinto";\nif address :all :is "from" "alice+lists@friends.example" { fileinto "All"; }\n' },
  ...DATE_PARTS.flatMap((part) => [':originalzone', ':zone "-0130"', ':zone "+1400"', ''].map((zone) => ({
    name: `date ${zone || 'local'} ${part}`, msg: DATED,
    script: `require ["date","fileinto","variables"];\nif date :matches ${zone} "date" "${part}" "*" { fileinto "d.\${0}"; }\n`,
  }))),
  { name: 'date :value ge', msg: DATED, script: 'require ["date","relational","fileinto"];\nif date :value "ge" :originalzone "date" "date" "2026-03-01" { fileinto "Recent"; }\n' },
  { name: 'date weekday numeric', msg: DATED, script: 'require ["date","relational","comparator-i;ascii-numeric","fileinto"];\nif date :value "eq" :comparator "i;ascii-numeric" :originalzone "date" "weekday" "6" { fileinto "Sat"; }\n' },
  { name: 'date obsolete zone', msg: DATED, script: 'require ["date","fileinto","variables"];\nif date :matches :zone "+0000" "resent-date" "iso8601" "*" { fileinto "r.${1}"; }\n' },
  { name: 'date unparsable never matches', msg: DATED, script: 'require ["date","fileinto"];\nif date :matches "x-date" "year" "*" { fileinto "Bad"; }\n' },
  { name: 'date missing header', msg: DATED, script: 'require ["date","fileinto"];\nif not date :matches "x-none" "year" "*" { fileinto "None"; }\n' },
  { name: 'date received all', msg: DATED, script: 'require ["date","fileinto"];\nif date :is :zone "+0000" "received" "date" "2026-02-03" { fileinto "Old"; }\n' },
  { name: 'date received :index 2', msg: DATED, script: 'require ["date","index","fileinto","variables"];\nif date :matches :index 2 :zone "+0000" "received" "iso8601" "*" { fileinto "i.${1}"; }\n' },
  { name: 'date received :index 1 :last', msg: DATED, script: 'require ["date","index","fileinto","variables"];\nif date :matches :index 1 :last :originalzone "received" "time" "*" { fileinto "l.${1}"; }\n' },
  { name: 'date :count', msg: DATED, script: 'require ["date","relational","comparator-i;ascii-numeric","fileinto"];\nif date :count "eq" :comparator "i;ascii-numeric" "received" "year" "3" { fileinto "Three"; }\n' },
  { name: 'header :index 2', msg: DATED, script: 'require ["index","fileinto"];\nif header :contains :index 2 "received" "relay.example.net by mx2" { fileinto "Second"; }\n' },
  { name: 'header :index 3 too far for the first', msg: DATED, script: 'require ["index","fileinto"];\nif header :matches :index 2 ["cc","to"] "*" { fileinto "Cc2"; }\n' },
  { name: 'header :index :last', msg: DATED, script: 'require ["index","fileinto","variables"];\nif header :matches :index 1 :last "received" "from *.example* by*" { fileinto "first.${1}"; }\n' },
  { name: 'address :index', msg: DATED, script: 'require ["index","fileinto","variables"];\nif address :localpart :matches :index 2 "cc" "*" { fileinto "a.${1}"; }\n' },
  { name: 'currentdate year', script: 'require ["date","relational","fileinto"];\nif currentdate :value "ge" :zone "+0000" "year" "2020" { fileinto "Now"; }\n' },
  { name: 'currentdate zone part', script: 'require ["date","fileinto","variables"];\nif currentdate :matches :zone "+0530" "zone" "*" { fileinto "z${1}"; }\n' },
  { name: 'err date not required', script: 'if date "date" "year" "2026" { keep; }\n' },
  { name: 'err :index not required', script: 'if header :index 1 "to" "x" { keep; }\n' },
  { name: 'err :index zero', script: 'require "index";\nif header :index 0 "to" "x" { keep; }\n' },
  { name: 'err :last without :index', script: 'require ["date","index"];\nif date :last "date" "year" "2026" { keep; }\n' },
  { name: 'err two zones', script: 'require "date";\nif date :zone "+0100" :originalzone "date" "year" "2026" { keep; }\n' },
  { name: 'err currentdate :originalzone', script: 'require "date";\nif currentdate :originalzone "year" "2026" { keep; }\n' },
  { name: 'err date arguments', script: 'require "date";\nif date "date" "year" { keep; }\n' },
  // RFC 6609 include: the personal and global scripts are INCLUDED below, in both engines' configured places.
  { name: 'include personal', script: 'require "include";\ninclude "sub";\n' },
  { name: 'include stop ends all', script: 'require ["include","fileinto"];\ninclude :personal "junk";\nfileinto "After";\n' },
  { name: 'include return ends the included script', script: 'require ["include","fileinto"];\ninclude "ret";\nfileinto "Main";\n' },
  { name: 'include global variable shared', script: 'require ["include","variables","fileinto"];\nglobal "who";\nset "who" "main";\ninclude "vars";\nfileinto "m-${who}";\n' },
  { name: 'include local variable not shared', script: 'require ["include","variables","fileinto"];\nset "who" "main";\ninclude "vars";\nfileinto "m-${who}";\n' },
  { name: 'include global. namespace', script: 'require ["include","variables","fileinto"];\ninclude "vars";\nfileinto "n-${global.who}";\n' },
  { name: 'include :once', script: 'require ["include","variables","fileinto"];\nglobal "n";\ninclude :once "once";\ninclude :once "once";\nfileinto "once-${n}";\ninclude "once";\nfileinto "all-${n}";\n' },
  { name: 'include and imap4flags', script: 'require ["include","imap4flags"];\naddflag "$Main";\ninclude "flags";\n' },
  { name: 'include :global', script: 'require ["include","variables"];\nglobal "x";\nset "x" "v";\ninclude :global "g";\n' },
  { name: 'include :optional missing', script: 'require ["include","fileinto"];\ninclude :optional "missing";\nfileinto "Opt";\n' },
  { name: 'include nested', script: 'require ["include","fileinto"];\ninclude "nested";\nfileinto "Top";\n' },
  { name: 'return in the main script', script: 'require ["include","fileinto"];\nfileinto "A";\nreturn;\nfileinto "B";\n' },
  { name: 'err include missing', script: 'require "include";\ninclude "missing";\n' },
  { name: 'err include global missing', script: 'require "include";\nkeep;\ninclude :global "sub";\n' },
  { name: 'err include invalid name', script: 'require "include";\ninclude "a/b";\n' },
  { name: 'err include not required', script: 'include "sub";\n' },
  // RFC 5463 ihave: a true test loads the extension (require-less use inside and after), a false one skips its block at compile time.
  { name: 'ihave true', script: 'require "ihave";\nif ihave "fileinto" { fileinto "A"; }\nfileinto "B";\n' },
  { name: 'ihave false skips unknown commands', script: 'require "ihave";\nif ihave "x-nope" { frob "a"; if bogus { x; } } else { discard; }\n' },
  { name: 'ihave list with an unknown one', script: 'require ["ihave","fileinto"];\nif ihave ["fileinto","x-nope"] { fileinto "A"; } elsif ihave "fileinto" { fileinto "B"; } else { discard; }\n' },
  { name: 'constant true if skips its else', script: 'if true { keep; } else { frob; }\n' },
  { name: 'err a true ihave is not constant', script: 'require ["ihave","fileinto"];\nif ihave "fileinto" { fileinto "B"; } else { frob; }\n' },
  { name: 'ihave variables is false', script: 'require ["ihave","variables","fileinto"];\nif ihave "variables" { fileinto "V"; } else { fileinto "NoV"; }\n' },
  { name: 'not ihave', script: 'require ["ihave","fileinto"];\nif not ihave "x-nope" { fileinto "N"; }\nif anyof (ihave "x-nope", header :is "X-Spam" "Yes") { fileinto "S"; }\n' },
  { name: 'constant false block not validated', script: 'if false { frob; }\nif allof (false, frob) { keep; }\n' },
  { name: 'error fails the script, implicit keep', script: 'require ["ihave","fileinto"];\nfileinto "A";\nerror "boom here";\nfileinto "X";\n' },
  { name: 'err ihave not required', script: 'if ihave "fileinto" { keep; }\n' },
  { name: 'err unknown command after a false ihave', script: 'require "ihave";\nif ihave "x-nope" { frob; }\nfrob;\n' },
  { name: 'err error not required', script: 'error "x";\n' },
  // Compile errors: line and text must match Pigeonhole's.
  { name: 'err missing semicolon', script: 'require "fileinto";\nif header :is "x" "y" { fileinto "J" }\n' },
  { name: 'err unterminated block', script: 'require "fileinto";\nif true { fileinto "J";\n' },
  { name: 'err fileinto not required', script: 'fileinto "J";\n' },
  { name: 'err unknown capability', script: 'require ["fileinto", "foo"];\n' },
  { name: 'err unknown command', script: 'if true {\n  frobnicate;\n}\n' },
  { name: 'err unknown test', script: 'if frob "a" { keep; }\n' },
  { name: 'err argument count', script: 'require "fileinto";\nfileinto;\n' },
  { name: 'err header args', script: 'if header "a" { keep; }\n' },
  { name: 'err elsif without if', script: 'keep;\nelsif true { keep; }\n' },
  { name: 'err unknown tag', script: 'keep :foo;\n' },
  { name: 'err numeric comparator not required', script: 'if header :is :comparator "i;ascii-numeric" "x" "1" { keep; }\n' },
  { name: 'err string list', script: 'if exists ["a" "b"] { keep; }\n' },
  { name: 'err unterminated string', script: 'keep;\n"abc\n' },
  { name: 'err unterminated comment', script: 'keep; /* abc\n\n' },
  { name: 'err stray character', script: 'keep; @\n' },
  { name: 'err unterminated text:', script: 'require "fileinto";\nfileinto text:\nabc\n' },
  { name: 'err extra closing brace', script: 'if true { keep; }}\n' },
  { name: 'err test with sub-tests', script: 'if anyof (true false) {keep;}\n' },
  { name: 'err empty test after comma', script: 'if anyof (true, ) {keep;}\n' },
  { name: 'err empty test list', script: 'if anyof () {keep;}\n' },
  { name: 'err discard args', script: 'discard "x";\n' },
  ...NOTIFY_CASES(),
  ...EDITHEADER_CASES(),
];

/** RFC 5293 editheader: later tests see the edit; Pigeonhole's protected fields and its compile/runtime errors. */
function EDITHEADER_CASES(): Case[] {
  const E = 'require ["editheader","fileinto","variables"];\n';
  return [
    { name: 'addheader seen by a later test', script: E + 'addheader "X-Seen" "yes";\nif header :is "x-seen" "yes" { fileinto "Added"; }\n' },
    { name: 'addheader non-ASCII value seen decoded', script: E + 'addheader :last "X-U" "Grüße aus Köln";\nif header :is "X-U" "Grüße aus Köln" { fileinto "U"; }\n' },
    { name: 'deleteheader then not exists', script: E + 'deleteheader "X-Spam-Flag";\nif not exists "X-Spam-Flag" { fileinto "Gone"; }\n' },
    { name: 'deleteheader :index :last', script: E + 'addheader :last "X-A" "1";\naddheader :last "X-A" "2";\naddheader :last "X-A" "3";\ndeleteheader :index 1 :last "X-A";\n'
      + 'if header :is "X-A" "3" { fileinto "Three"; }\nif header :is "X-A" "2" { fileinto "Two"; }\nif header :is "X-A" "1" { fileinto "One"; }\n' },
    { name: 'deleteheader :index counts from the top', script: E + 'addheader :last "X-A" "1";\naddheader :last "X-A" "2";\ndeleteheader :index 1 "X-A";\nif header :is "X-A" "1" { fileinto "One"; }\nif header :is "X-A" "2" { fileinto "Two"; }\n' },
    { name: 'deleteheader :matches value pattern', script: E + 'deleteheader :matches "X-Spam-Score" "1*";\nif not exists "X-Spam-Score" { fileinto "Gone"; }\n' },
    { name: 'deleteheader :contains not matching keeps', script: E + 'deleteheader :contains "Subject" "zzz";\nif exists "Subject" { fileinto "Kept"; }\n' },
    { name: 'deleteheader :index with a pattern', script: E + 'addheader :last "X-A" "a1";\naddheader :last "X-A" "b1";\ndeleteheader :index 2 :matches "X-A" "a*";\nif header :is "X-A" "a1" { fileinto "A1"; }\n' },
    { name: 'Received is never deleted', msg: DATED, script: E + 'deleteheader "Received";\nif exists "Received" { fileinto "Still"; }\n' },
    { name: 'Auto-Submitted is never deleted', script: E + 'addheader "Auto-Submitted" "auto-replied";\ndeleteheader "auto-submitted";\nif exists "Auto-Submitted" { fileinto "Still"; }\n' },
    { name: 'X-Sieve-Redirected-From is never added', script: E + 'addheader "X-Sieve-Redirected-From" "me";\nif not exists "X-Sieve-Redirected-From" { fileinto "No"; }\n' },
    { name: 'deleteheader from a variable', script: E + 'set "h" "x-spam";\ndeleteheader "${h}";\nif not exists "X-Spam" { fileinto "Gone"; }\n' },
    { name: 'err addheader without require', script: 'addheader "X-A" "1";\n' },
    { name: 'err addheader invalid field name', script: E + 'addheader "X Bad" "v";\n' },
    { name: 'err addheader one argument', script: E + 'addheader "X-A";\n' },
    { name: 'err addheader number', script: E + 'addheader 1 "v";\n' },
    { name: 'err addheader value too large', script: E + `addheader "X-A" "${'v'.repeat(2049)}";\n` },
    { name: 'addheader value at the size limit', script: E + `addheader "X-A" "${'v'.repeat(2048)}";\nif exists "X-A" { fileinto "Big"; }\n` },
    { name: 'err deleteheader without arguments', script: E + 'deleteheader;\n' },
    // Pigeonhole logs "the :last tag ... cannot be specified without the :index tag" and runs the script anyway
    { name: 'deleteheader :last without :index deletes all', script: E + 'addheader "X-A" "1";\naddheader "X-A" "2";\ndeleteheader :last "X-A";\nif not exists "X-A" { fileinto "None"; }\n' },
    { name: 'err deleteheader invalid field name', script: E + 'deleteheader "a:b";\n' },
    { name: 'err deleteheader :index string', script: E + 'deleteheader :index "1" "X-A";\n' },
    { name: 'runtime addheader invalid name from a variable', script: E + 'set "n" "a b";\naddheader "${n}" "v";\n' },
    { name: 'runtime addheader too large from a variable', script: E + `set "v" "${'v'.repeat(1500)}";\naddheader "X-A" "\${v}\${v}";\n` },
    { name: 'runtime deleteheader invalid name from a variable', script: E + 'set "n" "a:b";\ndeleteheader "${n}";\n' },
  ];
}

/** RFC 5435/5436 enotify with mailto, RFC 7352 duplicate, RFC 5235 spamtest/virustest. */
function NOTIFY_CASES(): Case[] {
  const N = 'require ["enotify","variables","fileinto"];\n';
  const VIRUS = SPAM.replace('Message-ID:', 'X-Virus-Scan: infected (x)\r\nMessage-ID:');
  return [
    { name: 'notify all options', script: N + 'notify :importance "1" :message "Hi" :from "me@example.org" "mailto:alice@example.net%2Cbob@example.net?cc=carol@example.net&subject=S&body=B&X-Foo=bar&from=x";\n' },
    { name: 'notify defaults', script: N + 'notify "mailto:alice@example.net";\n' },
    { name: 'notify importance 3 and URI subject', script: N + 'notify :importance "3" "mailto:a@example.net?subject=Hello%20there";\n' },
    { name: 'notify duplicate recipients merged', script: N + 'notify "mailto:a@example.net";\nnotify "mailto:a@example.net%2Cb@example.net";\nnotify "mailto:A@example.net";\n' },
    { name: 'notify URI duplicates, unique and reserved fields', script: N + 'notify "mailto:a@b.example?to=c@d.example&cc=a@b.example&reply-to=x@y.example&reply-to=q@r.example&subject=1&subject=2&received=x&bcc=z@z.example";\n' },
    { name: 'notify more than 8 recipients', script: N + 'notify "mailto:a1@x.example%2Ca2@x.example%2Ca3@x.example%2Ca4@x.example%2Ca5@x.example?to=a6@x.example,a7@x.example,a8@x.example,a9@x.example";\n' },
    { name: 'notify no recipients', script: N + 'notify "mailto:?subject=x";\n' },
    { name: 'notify URI from variables with :encodeurl', script: N + 'set :encodeurl "s" "Re: a&b ü/?";\nnotify "mailto:a@example.net?subject=${s}";\nfileinto "x${s}";\n' },
    { name: 'encodeurl after quotewildcard, before length', script: N + 'set :encodeurl :length "l" "a b";\nset :quotewildcard :encodeurl "q" "*";\nfileinto "${l}.${q}";\n' },
    { name: 'notify options ignored', script: N + 'notify :options ["k=v", "x-y.z=1"] "mailto:a@example.net";\n' },
    { name: 'valid_notify_method', script: N + 'if valid_notify_method ["mailto:a@b.example", "mailto:x@"] { fileinto "v1"; }\nif valid_notify_method "mailto:a@b.example" { fileinto "v2"; }\nif valid_notify_method "xmpp:a@b.example" { fileinto "v3"; }\nif valid_notify_method "mailto:a@b.example?x%=1" { fileinto "v4"; }\n' },
    { name: 'notify_method_capability', script: N + 'if notify_method_capability "mailto:a@b.example" "Online" "maybe" { fileinto "c1"; }\nif notify_method_capability "mailto:a@b.example" "online" "yes" { fileinto "c2"; }\nif notify_method_capability :matches "mailto:a@b.example" "other" "*" { fileinto "c3"; }\n' },
    { name: 'notify runtime bad method fails', script: N + 'set "u" "foo:x";\nfileinto "A";\nnotify "${u}";\n' },
    { name: 'notify runtime bad recipient fails', script: N + 'set "u" "mailto:bad@";\nnotify "${u}";\n' },
    { name: 'notify runtime bad :from fails', script: N + 'set "f" "bad";\nnotify :from "${f}" "mailto:a@example.net";\n' },
    { name: 'err notify unknown method', script: N + 'notify "foo:bar";\n' },
    { name: 'err notify bad scheme', script: N + 'notify "1mailto:x";\n' },
    { name: 'err notify bad recipient', script: N + 'notify "mailto:bad@";\n' },
    { name: 'err notify bad header name char', script: N + 'notify "mailto:a@b.example?x y=1";\n' },
    { name: 'err notify bad % encoding', script: N + 'notify "mailto:a@b.example%2";\n' },
    { name: 'err notify %00', script: N + 'notify "mailto:a@b.example?subject=%00";\n' },
    { name: 'err notify empty option', script: N + 'notify :options ["a=b", ""] "mailto:a@b.example";\n' },
    { name: 'err notify bad option name', script: N + 'notify :options "=b" "mailto:a@b.example";\n' },
    { name: 'err notify importance 4', script: N + 'notify :importance "4" "mailto:a@b.example";\n' },
    { name: 'err notify importance number', script: N + 'notify :importance 1 "mailto:a@b.example";\n' },
    { name: 'err notify bad :from', script: N + 'notify :from "bad" "mailto:a@b.example";\n' },
    { name: 'err notify no method', script: N + 'notify;\n' },
    { name: 'err notify method list', script: N + 'notify ["mailto:a@b.example", "mailto:c@d.example"];\n' },
    { name: 'err valid_notify_method number', script: N + 'if valid_notify_method 1 { keep; }\n' },
    { name: 'err notify_method_capability args', script: N + 'if notify_method_capability "mailto:a@b.example" "online" { keep; }\n' },
    { name: 'err encodeurl without enotify', script: 'require "variables";\nset :encodeurl "a" "b";\n' },
    { name: 'err notify not required', script: 'notify "mailto:a@b.example";\n' },
    // RFC 7352 duplicate: sieve-test has no duplicate database, so every check is new; the marks are the actions
    { name: 'duplicate defaults', script: 'require ["duplicate","fileinto"];\nif duplicate { fileinto "dup"; }\n' },
    { name: 'duplicate tags', script: 'require ["duplicate","fileinto"];\nif duplicate :handle "x" :header "subject" :seconds 100 :last { fileinto "d2"; }\nif duplicate :uniqueid "abc" { fileinto "d3"; }\n' },
    { name: 'duplicate missing header', script: 'require ["duplicate","fileinto"];\nif duplicate :header "x-none" { fileinto "a"; }\n' },
    { name: 'err duplicate header and uniqueid', script: 'require "duplicate";\nif duplicate :header "subject" :uniqueid "x" { keep; }\n' },
    { name: 'err duplicate seconds string', script: 'require "duplicate";\nif duplicate :seconds "1" { keep; }\n' },
    { name: 'err duplicate args', script: 'require "duplicate";\nif duplicate "x" { keep; }\n' },
    { name: 'err duplicate :value needs vnd', script: 'require "duplicate";\nif duplicate :value "x" { keep; }\n' },
    { name: 'err duplicate and vnd.dovecot.duplicate', script: 'require ["duplicate","vnd.dovecot.duplicate"];\nkeep;\n' },
    { name: 'err vnd.dovecot.duplicate not enabled', script: 'require "vnd.dovecot.duplicate";\nkeep;\n' },
    // RFC 5235 (X-Spam-Score 12 of max 15; X-Virus-Scan text values)
    { name: 'spamtest values', script: 'require ["spamtestplus","relational","comparator-i;ascii-numeric","fileinto","variables"];\nif spamtest :percent :matches "*" { fileinto "p${1}"; }\nif spamtest :matches "*" { fileinto "s${1}"; }\nif spamtest :value "ge" :comparator "i;ascii-numeric" "8" { fileinto "Junk"; }\n' },
    { name: 'spamtest ham', msg: HAM, script: 'require ["spamtestplus","fileinto","variables"];\nif spamtest :percent :matches "*" { fileinto "p${1}"; }\nif spamtest :matches "*" { fileinto "s${1}"; }\n' },
    { name: 'spamtest no header', msg: DATED, script: 'require ["spamtest","fileinto","variables"];\nif spamtest :matches "*" { fileinto "s${1}"; }\n' },
    { name: 'virustest text', msg: VIRUS, script: 'require ["virustest","fileinto","variables"];\nif virustest :matches "*" { fileinto "v${1}"; }\n' },
    { name: 'virustest unknown text', script: 'require ["virustest","fileinto","variables"];\nif virustest :matches "*" { fileinto "v${1}"; }\n' },
    { name: 'err spamtest :percent without spamtestplus', script: 'require "spamtest";\nif spamtest :percent "50" { keep; }\n' },
    { name: 'err virustest :percent', script: 'require "virustest";\nif virustest :percent "50" { keep; }\n' },
    { name: 'err spamtest number', script: 'require "spamtest";\nif spamtest 5 { keep; }\n' },
    { name: 'err spamtest not required', script: 'if spamtest "5" { keep; }\n' },
    // sieve_max_actions (32): the 33rd action fails the script
    { name: 'sieve_max_actions', script: 'require "fileinto";\n' + Array.from({ length: 33 }, (_, i) => `fileinto "f${i}";\n`).join('') },
    { name: '32 actions are fine', script: 'require "fileinto";\n' + Array.from({ length: 32 }, (_, i) => `fileinto "f${i}";\n`).join('') },
    { name: 'notify :from from a variable', script: N + 'set "f" "Me <me@example.org>";\nnotify :from "${f}" "mailto:a@example.net";\n' },
    { name: 'err duplicate :seconds without value', script: 'require "duplicate";\nif duplicate :seconds { keep; }\n' },
    { name: 'err notify :from list', script: N + 'notify :from ["a@b.example"] "mailto:a@b.example";\n' },
    { name: 'err notify :options number', script: N + 'notify :options 1 "mailto:a@b.example";\n' },
  ];
}

const INCLUDED: Record<string, Record<string, string>> = {
  personal: {
    sub: 'require ["fileinto"];\nfileinto "FromSub";\n',
    junk: 'require ["fileinto"];\nif header :is "X-Spam" "Yes" { fileinto "Junk"; stop; }\n',
    ret: 'require ["fileinto","include"];\nfileinto "R1";\nreturn;\nfileinto "R2";\n',
    vars: 'require ["fileinto","include","variables"];\nglobal "who";\nfileinto "v-${who}";\nset "who" "sub";\n',
    once: 'require ["include","variables"];\nglobal "n";\nset "n" "${n}x";\n',
    flags: 'require ["imap4flags","fileinto"];\nfileinto "F";\naddflag "$Sub";\n',
    nested: 'require ["include","fileinto"];\ninclude "sub";\nfileinto "Nested";\n',
  },
  global: { g: 'require ["fileinto","include","variables"];\nglobal "x";\nfileinto "G-${x}";\nreturn;\nfileinto "never";\n' },
};


async function ourActions(c: Case, s: CompiledScript, dirs: IncludeDirs): Promise<string[]> {
  const r = await runScript(s, { message: parseMessage(Buffer.from(c.msg ?? SPAM)), envelope: { from: c.from ?? 'sender@example.net', to: c.to ?? 'john@example.org' }, include: includeLoader(dirs, OPTS), settings: SETTINGS });
  const acts: string[] = [];
  const fl = (f: string[]) => (f.length ? ` flags=${f.map((x) => x.toLowerCase()).sort().join(',')}` : '');
  let delivered = false;
  for (const a of r.actions) {
    if (a.type === 'fileinto') { acts.push(`store ${a.mailbox}${fl(a.flags)}`); delivered = true; }
    if (a.type === 'redirect') { acts.push(`redirect ${a.address}`); delivered = true; }
    if (a.type === 'reject') { acts.push(`reject ${a.reason}`); delivered = true; }
    if (a.type === 'vacation') { acts.push('vacation', `vacation seconds=${a.seconds}`); if (a.subject) acts.push(`vacation subject=${a.subject}`); }
    if (a.type === 'duplicate') acts.push(`track${a.last ? ' last' : ''} duplicate${a.handle !== undefined ? ` with handle: ${a.handle}` : ''}`);
    if (a.type === 'notify') {
      const n = a.notify;
      const subject = n.message ?? n.uri.subject;
      acts.push(`notify|importance=${n.importance}${subject !== undefined ? `|subject=${subject}` : ''}${n.from !== undefined ? `|from=${n.from}` : ''}`
        + n.uri.recipients.map((r) => `|${r.cc ? 'Cc' : 'To'}: ${r.full}`).join('') + n.uri.headers.map((h) => `|${h.name}: ${h.body}`).join('')
        + (n.uri.body !== undefined ? `|body=${n.uri.body}|` : ''));
    }
  }
  if (r.keep) acts.push(`store INBOX${fl(r.keepFlags)}`);
  else if (!delivered) acts.push('discard');
  // keep and fileinto "INBOX" are one store, as in Pigeonhole's result.
  return [...new Set(acts)].sort();
}

test('Sealmail Sieve agrees with Pigeonhole sieve-test', async (t) => {
  const sieveTest = requireTool(t, 'sieve-test');
  if (!sieveTest) return;
  const dir = tempDir(t, 'sieve-diff');
  chmodSync(dir, 0o755);
  const root = process.getuid?.() === 0;
  const uid = root ? 65534 : process.getuid!();
  const gid = root ? 65534 : process.getgid!();
  mkdirSync(join(dir, 'run'));
  const conf = join(dir, 'dovecot.conf');
  const dirs = { personal: join(dir, 'sieve'), global: join(dir, 'global') };
  for (const [kind, scripts] of Object.entries(INCLUDED)) {
    const d = kind === 'global' ? dirs.global : dirs.personal;
    mkdirSync(d, { mode: 0o755 });
    for (const [n, text] of Object.entries(scripts)) writeFileSync(join(d, `${n}.sieve`), text, { mode: 0o644 });
  }
  writeFileSync(conf, `mail_uid = ${uid}\nmail_gid = ${gid}\nfirst_valid_uid = 1\nmail_location = maildir:${dir}/Maildir\nbase_dir = ${dir}/run\nlog_path = /dev/stderr\nssl = no\n`
    + `plugin {\n  sieve = file:${dirs.personal};active=${dir}/active.sieve\n  sieve_global = ${dirs.global}\n${Object.entries(SETTINGS).map(([k, v]) => `  ${k} = ${v}\n`).join('')}}\n`);
  let i = 0;
  for (const c of CASES) {
    await t.test(c.name, async () => {
      const sd = join(dir, `c${i++}`);
      mkdirSync(sd, { mode: 0o755 });
      const sp = join(sd, 's.sieve');
      const mp = join(sd, 'm.eml');
      writeFileSync(sp, c.script, { mode: 0o644 });
      writeFileSync(mp, c.msg ?? SPAM, { mode: 0o644 });
      const r = spawnSync(sieveTest, ['-c', conf, '-f', c.from ?? 'sender@example.net', '-r', c.to ?? 'john@example.org', sp, mp], { encoding: 'utf8', timeout: 120_000, cwd: sd });
      const oracleErrors = r.stderr.split('\n').filter((l) => /^s: line \d+: error:/.test(l));
      // (a runtime error is reported with a line too: compile errors are those of a failed compile)
      if (oracleErrors.length && r.stderr.includes('failed to compile')) {
        await assert.rejects(loadWithIncludes(sp, dirs, OPTS), (e: unknown) => {
          assert.ok(e instanceof SieveCompileError);
          assert.deepEqual(e.errors, oracleErrors);
          return true;
        });
        return;
      }
      if (r.stderr.includes('final result: failed; resolved with successful implicit keep')) {
        // a runtime failure (RFC 5463 error): Sealmail's run fails with the same message; deliver.ts then keeps
        await assert.rejects(ourActions(c, await loadWithIncludes(sp, dirs, OPTS), dirs), (e: unknown) => {
          assert.ok(e instanceof SieveRuntimeError);
          assert.ok(r.stderr.split('\n').some((l) => l === `error: ${e.message}.` || l.endsWith(`: error: ${e.message}.`)), `${e.message}\n${r.stderr}`);
          return true;
        });
        return;
      }
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(await ourActions(c, await loadWithIncludes(sp, dirs, OPTS), dirs), oracleActions(r.stdout), r.stdout);
    });
  }
});

/**
 * RFC 5183 environment: every core item (and an unknown one, and a name in
 * another case: item names are case-sensitive) read by sieve-test under a
 * given username (USER) and host name (DOVECOT_HOSTDOMAIN), against
 * Sealmail's items for the same user and host. sieve-test runs as a message
 * store ("MS", "post"), which is also what IMAPSieve gives; delivery's
 * "MDA"/"during" is asserted in test/sieve/deliver.test.ts.
 */
test('environment items agree with Pigeonhole sieve-test', async (t) => {
  const sieveTest = requireTool(t, 'sieve-test');
  if (!sieveTest) return;
  const dir = tempDir(t, 'sieve-env');
  chmodSync(dir, 0o755);
  const root = process.getuid?.() === 0;
  mkdirSync(join(dir, 'run'));
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `mail_uid = ${root ? 65534 : process.getuid!()}\nmail_gid = ${root ? 65534 : process.getgid!()}\nfirst_valid_uid = 1\nmail_location = maildir:${dir}/Maildir\nbase_dir = ${dir}/run\nlog_path = /dev/stderr\nssl = no\n`
    + 'import_environment = USER HOME DOVECOT_HOSTDOMAIN\n');
  const items = ['domain', 'host', 'location', 'phase', 'name', 'version', 'remote-ip', 'remote-host', 'Host', 'vnd.dovecot.username'];
  const script = 'require ["environment","variables","fileinto"];\n'
    + items.map((it, k) => `if environment :matches "${it}" "*" { fileinto "${k}=\${1}"; } else { fileinto "${k} none"; }\n`).join('');
  const sp = join(dir, 's.sieve');
  const mp = join(dir, 'm.eml');
  writeFileSync(sp, script, { mode: 0o644 });
  writeFileSync(mp, HAM, { mode: 0o644 });
  const compiled = await loadWithIncludes(sp, {}, OPTS);
  // username with and without a domain; host names with two dots, one dot and none
  const runs: Array<[string, string]> = [['john@example.org', 'mail.example.com'], ['john', 'mail.example.com'], ['john', 'mx.a.b.example'], ['john', 'host.local'], ['john', 'mailhost'], ['john@', 'mail.example.com']];
  for (const [user, host] of runs) {
    await t.test(`USER=${user} host=${host}`, async () => {
      const r = spawnSync(sieveTest, ['-c', conf, sp, mp], { encoding: 'utf8', timeout: 120_000, cwd: dir, env: { ...process.env, USER: user, HOME: dir, DOVECOT_HOSTDOMAIN: host } });
      assert.equal(r.status, 0, r.stderr);
      const res = await runScript(compiled, { message: parseMessage(Buffer.from(HAM)), envelope: { from: 'sender@example.net', to: 'john@example.org' }, settings: SETTINGS,
        environment: environmentItems({ username: user, hostname: host, location: 'MS', phase: 'post' }) });
      const ours = res.actions.flatMap((a) => (a.type === 'fileinto' ? [`store ${a.mailbox}`] : [])).sort();
      const theirs = oracleActions(r.stdout).filter((a) => a !== 'store INBOX');
      assert.equal(theirs.length, items.length, r.stdout);
      assert.deepEqual(ours, theirs);
    });
  }
});
