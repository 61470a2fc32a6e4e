/** Dovecot 2.3's %-variable expansion: names, modifiers, substrings, conditionals, escaping. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandVars, expandVarsChecked } from '../../src/config/vars.js';

const V = { user: 'John.Doe@Example.org', password: "pa'ss", service: 'imap', home: '/var/vmail/example.org/john', rip: '192.0.2.7', hostname: 'mx1' };

test('short and long names, modifiers, substrings', () => {
  const cases: [string, string][] = [
    ['%u', 'John.Doe@Example.org'], ['%Lu', 'john.doe@example.org'], ['%Ln', 'john.doe'], ['%Ld', 'example.org'],
    ['%{user}', 'John.Doe@Example.org'], ['%L{username}', 'john.doe'], ['%Ud', 'EXAMPLE.ORG'],
    ['/var/vmail/%d/%n', '/var/vmail/Example.org/John.Doe'], ['%1n', 'J'], ['%2.1n', 'h'], ['%1Ln', 'j'],
    ['%Mu', 'ce7d542ca4be39acf62fde8921310034'], ['%{md5:user}', 'ce7d542ca4be39acf62fde8921310034'],
    ['%Dd', 'dc=Example,dc=org'], ['%Rn', 'eoD.nhoJ'], ['%h', '/var/vmail/example.org/john'], ['%s:%r', 'imap:192.0.2.7'],
    ['storage=95%%', 'storage=95%'], ['%{if;%d;ne;;%d;%{hostname}}', 'Example.org'],
    ['%{if;%s;==;imap;yes;no}', 'yes'], ['%{if;%{rip};*;192.0.2.*;lan;wan}', 'lan'],
  ];
  for (const [tpl, want] of cases) assert.equal(expandVars(tpl, V), want, tpl);
});

test('escape applies to expanded values only (SQL quoting of %u, %w)', () => {
  const q = expandVars("SELECT '%w' AS pw FROM t WHERE email='%u'", V, { escape: (s) => s.replace(/'/g, "''") });
  assert.equal(q, "SELECT 'pa''ss' AS pw FROM t WHERE email='John.Doe@Example.org'");
});

test('unknown variables and 2.4 pipe syntax are reported', () => {
  const r = expandVarsChecked('%{nosuch}-%z-%{user | lower}', V);
  assert.equal(r.value, 'UNSUPPORTED_VARIABLE_nosuch-UNSUPPORTED_VARIABLE_z-UNSUPPORTED_VARIABLE_user | lower');
  assert.equal(r.errors.length, 3);
});
