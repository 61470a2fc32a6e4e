/**
 * SORT / THREAD differential on generated mail (seeded, so a failure is
 * reproducible with SORT_SEED): 120 messages whose Message-IDs repeat or are
 * missing, whose References/In-Reply-To point backwards, forwards, at
 * unknown IDs and at themselves, odd address shapes in From/To, with
 * subjects from a small pool dressed in
 * Re:/Fwd:/[tags]/(fwd)/encoded words, and dates that tie, are missing or
 * broken — every sort key and thread algorithm, compared with Dovecot.
 */
import { test } from 'node:test';
import { assertSameTranscript, bothServers, lockstep, normaliseTranscript, seededRandom } from '../../helpers/imap-lockstep.js';

/** Address shapes Dovecot's parser has opinions about (placeholders, routes, groups, comments, encoded names). */
const ODD_ADDRESSES = [
  'x y@host.example', '"quoted \\"name\\"" <q@x.example>', '=?utf-8?q?J=C3=B6rg?= <j@x.example>', '<@route.example:r@x.example>',
  'group: ;', 'grp: m1@x.example, m2@x.example;', '(comment) c@x.example (more)', 'a@', '@b.example', '"" <e@x.example>',
  'Name <>', 'undisclosed-recipients:;', 'a b c', 'first@x.example, second@y.example', 'Zoë <z@x.example>', 'UPPER@X.EXAMPLE',
];

function corpus(seed: number, n: number): Buffer[] {
  const r = seededRandom(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)];
  const bases = ['meeting', 'Meeting notes', 'lunch?', 'build broken', 'café', '[list] release', 'x', '', 'Plans  for   2026'];
  const leaders = ['', '', 'Re: ', 'RE: ', 'Fwd: ', 'Re: Re: ', '[tag] Re: ', 'Re[2]: ', 'Fw: '];
  const trailers = ['', '', ' (fwd)', '  '];
  const names = ['ann', 'Bob', 'carl', 'Dora', 'eve', 'émile'];
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const h: string[] = [];
    const name = pick(names);
    if (r() > 0.05) h.push(`From: ${r() > 0.7 ? pick(ODD_ADDRESSES) : `${r() > 0.5 ? `"${name} ${pick(['X', 'Y'])}" ` : ''}<${name}@${pick(['a.example', 'b.example'])}>`}`);
    if (r() > 0.1) h.push(`To: ${r() > 0.7 ? pick(ODD_ADDRESSES) : `${pick(names)}@c.example`}`);
    if (r() > 0.7) h.push(`Cc: ${pick(names)}@d.example, z@d.example`);
    let subj = pick(leaders) + pick(bases) + pick(trailers);
    if (r() > 0.85) subj = `=?utf-8?q?${encodeURIComponent(subj).replace(/%/g, '=').replace(/ /g, '_')}?=`;
    if (r() > 0.05) h.push(`Subject: ${subj}`);
    const dr = r();
    if (dr > 0.1) h.push(`Date: ${dr > 0.95 ? 'broken date' : `${1 + Math.floor(r() * 5)} Mar 2026 ${String(Math.floor(r() * 3) + 10)}:00:00 ${pick(['+0000', '+0100', '-0500'])}`}`);
    const idr = r();
    if (idr > 0.08) h.push(`Message-ID: <${idr > 0.9 ? Math.floor(r() * i + 1) : i + 1}@gen>`);
    const ref = () => `<${Math.floor(r() * (n + 10)) + 1}@gen>`;
    const kind = r();
    if (kind < 0.45) h.push(`References: ${Array.from({ length: 1 + Math.floor(r() * 3) }, ref).join(' ')}`);
    else if (kind < 0.65) h.push(`In-Reply-To: ${ref()}`);
    else if (kind < 0.7) h.push(`In-Reply-To: junk ${ref()} ${ref()}`);
    out.push(Buffer.from(`${h.join('\r\n')}\r\n\r\nbody ${i}\r\n${'x'.repeat(Math.floor(r() * 50))}\r\n`, 'utf8'));
  }
  return out;
}

const COMMANDS = [
  ...['ARRIVAL', 'CC', 'DATE', 'FROM', 'SIZE', 'SUBJECT', 'TO', 'DISPLAYFROM', 'DISPLAYTO'].map((k, i) => `s${i} SORT (${k}) UTF-8 ALL`),
  'm1 SORT (SUBJECT REVERSE DATE) UTF-8 ALL',
  'm2 SORT (REVERSE FROM SUBJECT) UTF-8 ALL',
  't1 THREAD ORDEREDSUBJECT UTF-8 ALL',
  't2 THREAD REFERENCES UTF-8 ALL',
  't3 THREAD REFS UTF-8 ALL',
  't4 UID THREAD REFERENCES UTF-8 NOT 1:20',
  't5 THREAD REFS UTF-8 30:90',
];

test('SORT and THREAD on generated mail answer as Dovecot does', async (t) => {
  const seed = Number(process.env.SORT_SEED ?? 20260223);
  const ports = await bothServers(t);
  if (!ports) return;
  const appends = corpus(seed, 120).map((m, i) => Buffer.concat([Buffer.from(`A${i} APPEND INBOX "${String(1 + (i % 28)).padStart(2, '0')}-Feb-2026 0${i % 10}:00:00 +0000" {${m.length}+}\r\n`), m]));
  const script = [...appends, 'S1 SELECT INBOX', ...COMMANDS];
  const theirs = normaliseTranscript(await lockstep(ports.dovecot, script));
  const ours = normaliseTranscript(await lockstep(ports.sealmail, script));
  assertSameTranscript(ours, theirs);
});
