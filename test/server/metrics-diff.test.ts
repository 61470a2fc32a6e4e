/**
 * Differential test of `service stats { inet_listener http }` (Dovecot 2.3's
 * OpenMetrics export, stats-service-openmetrics.c): the same `metric {}`
 * sections in a real Dovecot 2.3.19 and in Sealmail (both process models:
 * the pools mode with mail_uid, the root master without), the same IMAP
 * sessions (logins, commands known and unknown, a failing SELECT, a failed
 * login) and one LMTP delivery through each, then GET /metrics of each is
 * parsed by a strict OpenMetrics parser and the families, label sets and
 * counts compared (durations, start time and build info masked).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { ImapLine } from '../helpers/imap-line.js';
import { LmtpWire } from '../helpers/lmtp-wire.js';

const METRICS = `
metric imap_command {
  filter = event=imap_command_finished
  group_by = cmd_name tagged_reply_state
}
metric imap_all {
  filter = event=imap_command_finished
}
metric auth_success {
  filter = event=auth_request_finished AND success=yes
}
metric auth_failures {
  filter = event=auth_request_finished AND NOT success=yes
}
metric mail_delivery {
  filter = event=mail_delivery_finished
}
metric smtp_transaction {
  filter = event=smtp_server_transaction_finished
}
metric imap_hist {
  filter = event=imap_command_finished
  group_by = cmd_name duration:exponential:1:5:10
}
metric select_ok {
  filter = event=imap_command_finished AND cmd_name=SELECT AND tagged_reply_state=OK
}
`;

const statsConf = (port: number) => `service stats {\n  inet_listener http {\n    port = ${port}\n  }\n}\n`;
const lmtpConf = (port: number) => `service lmtp {\n  inet_listener lmtp {\n    port = ${port}\n    address = 127.0.0.1\n  }\n}\n`;

interface Family { name: string; help: string; type: string; samples: string[] }

/**
 * A strict OpenMetrics text parser (the subset Dovecot writes): every family
 * starts with # HELP then # TYPE, its samples follow contiguously and are
 * named after it (with the suffixes its type allows), labels are
 * name="escaped value" pairs, values are numbers, no label set repeats, and
 * `# EOF` is the last line. Throws on the first violation.
 */
export function parseOpenMetrics(text: string): Family[] {
  assert.ok(text.endsWith('# EOF\n'), 'ends with # EOF');
  const lines = text.slice(0, -'# EOF\n'.length).split('\n');
  assert.equal(lines.pop(), '', 'every line ends with a newline');
  const families: Family[] = [];
  const seenNames = new Set<string>();
  const suffixes: Record<string, string[]> = { counter: ['_total', '_count', '_sum'], gauge: [''], info: ['_info'], histogram: ['_bucket', '_sum', '_count'] };
  let cur: Family | null = null;
  const seenSeries = new Set<string>();
  for (const [i, line] of lines.entries()) {
    const at = `line ${i + 1} ${JSON.stringify(line)}`;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      assert.ok(!seenNames.has(m[1]), `${at}: family declared twice`);
      seenNames.add(m[1]);
      cur = { name: m[1], help: m[2], type: '', samples: [] };
      families.push(cur);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|info|histogram)$/.exec(line);
    if (m) {
      assert.ok(cur && cur.name === m[1] && cur.type === '' && cur.samples.length === 0, `${at}: TYPE without its HELP`);
      cur.type = m[2];
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?\d+(?:\.\d+)?|\+Inf)$/.exec(line);
    assert.ok(m, `${at}: not a sample`);
    assert.ok(cur && cur.type, `${at}: sample outside a family`);
    const suffix = m[1].slice(cur.name.length);
    assert.ok(m[1].startsWith(cur.name) && suffixes[cur.type].includes(suffix), `${at}: ${m[1]} is no sample name of ${cur.type} ${cur.name}`);
    if (m[2] !== undefined) {
      const labels = m[2];
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)/y;
      let pos = 0;
      const names = new Set<string>();
      while (pos < labels.length) {
        re.lastIndex = pos;
        const l = re.exec(labels);
        assert.ok(l, `${at}: bad label syntax at ${pos}`);
        assert.ok(!names.has(l[1]), `${at}: label ${l[1]} twice`);
        names.add(l[1]);
        pos = re.lastIndex;
        if (l[3] === '' ) assert.equal(pos, labels.length);
      }
      assert.ok(labels.length > 0 && !labels.endsWith(','), `${at}: empty or trailing label set`);
      if (cur.type === 'histogram' && suffix === '_bucket') assert.ok(names.has('le'), `${at}: bucket without le`);
    }
    const series = `${m[1]}{${m[2] ?? ''}}`;
    assert.ok(!seenSeries.has(series), `${at}: series repeated`);
    seenSeries.add(series);
    cur.samples.push(line);
  }
  return families;
}

/** What may differ between two servers: durations (and the buckets they fall in), the start time, the build. */
function masked(f: Family): { head: string; samples: string[] } {
  const samples = f.samples.map((s) => {
    if (f.name === 'process_start_time_seconds') return s.replace(/ \d+$/, ' T');
    if (f.name === 'dovecot_build') return 'dovecot_build_info{…} 1';
    if (f.name.endsWith('_duration_seconds')) return s.replace(/ [\d.]+$/, ' D');
    if (f.type === 'histogram' && (s.includes('_bucket{') && !s.includes('le="+Inf"') || /_sum(\{| )/.test(s))) return s.replace(/ [\d.]+$/, ' D');
    return s;
  });
  // first-seen order of sub-metrics depends on which process reported first: compared as sets
  return { head: `${f.name} ${f.type} ${f.help}`, samples: samples.sort() };
}

function scrape(port: number): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The sessions both servers get: two logins with commands (known, unknown, failing), one failed login, one delivery. */
async function drive(imapPort: number, lmtpPort: number): Promise<void> {
  const l = new LmtpWire(lmtpPort);
  await l.hello();
  await l.send('MAIL FROM:<sender@example.org>\r\n', /^250 .*\r\n/m);
  await l.send('RCPT TO:<u1>\r\n', /^250 .*\r\n/m);
  await l.send('DATA\r\n', /^354 .*\r\n/m);
  await l.send('Subject: metrics\r\n\r\nhello\r\n.\r\n', /^250 .*\r\n/m);
  await l.send('QUIT\r\n', /^221 .*\r\n/m);
  const a = await ImapLine.open(imapPort);
  await a.cmd('p', 'CAPABILITY'); // before login: imap-login's, no imap_command_finished
  assert.match(await a.cmd('a', 'LOGIN u1 pass'), /^a OK/m);
  assert.match(await a.cmd('b', 'SELECT INBOX'), /^b OK/m);
  assert.match(await a.cmd('c', 'UID FETCH 1:* (FLAGS)'), /^c OK/m);
  assert.match(await a.cmd('d', 'NOOP'), /^d OK/m);
  assert.match(await a.cmd('e', 'FOO'), /^e BAD/m);
  assert.match(await a.cmd('f', 'NOOP'), /^f OK/m);
  assert.match(await a.cmd('h', 'FETCH 1 (FLAGS'), /^h BAD/m); // an argument error: counted as the command's BAD
  assert.match(await a.cmd('i', 'UID FOO'), /^i BAD/m);
  assert.match(await a.cmd('g', 'LOGOUT'), /^g OK/m);
  a.close();
  const b = await ImapLine.open(imapPort);
  assert.match(await b.cmd('a', 'LOGIN u2 wrong'), /^a NO/m);
  assert.match(await b.cmd('b', 'LOGIN u2 pass'), /^b OK/m);
  assert.match(await b.cmd('c', 'SELECT Nope'), /^c NO/m);
  assert.match(await b.cmd('d', 'LOGOUT'), /^d OK/m);
  b.close();
}

/** Scrape until the counters of everything driven have arrived (the stats events travel asynchronously in both servers). */
async function settled(port: number): Promise<Family[]> {
  let last = '';
  const end = Date.now() + 20_000;
  for (;;) {
    const r = await scrape(port);
    last = r.body;
    if (/^dovecot_imap_all_total 10$/m.test(r.body) && /^dovecot_auth_failures_total 1$/m.test(r.body) && /^dovecot_mail_delivery_total 1$/m.test(r.body) && /^dovecot_smtp_transaction_total 1$/m.test(r.body)) {
      assert.equal(r.status, 200);
      assert.equal(r.type, 'application/openmetrics-text; version=0.0.1; charset=utf-8');
      return parseOpenMetrics(r.body);
    }
    if (Date.now() > end) throw new Error(`/metrics did not reach the expected counts within 20 s:\n${last}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function sealmailMetrics(t: TestContext, rootMaster: boolean): Promise<{ families: Family[]; srv: SealmailServer }> {
  const [stats, lmtp] = [await freePort(), await freePort()];
  const srv = await startSealmail(t, {
    extraConf: `${METRICS}${statsConf(stats)}${lmtpConf(lmtp)}`,
    rewriteConf: (text) => {
      const conf = text.replace(/^protocols = imap$/m, 'protocols = imap lmtp');
      return rootMaster ? conf.replace(/^mail_[ug]id = .*\n/gm, '') : conf;
    },
  });
  await drive(srv.imapPort, lmtp);
  return { families: await settled(stats), srv };
}

let dovecotFamilies: Family[] | null = null;
async function dovecot(t: TestContext): Promise<Family[] | null> {
  if (dovecotFamilies) return dovecotFamilies;
  const [stats, lmtp] = [await freePort(), await freePort()];
  const imap = await freePort();
  const dv = setupDovecot(null, { start: true, extraConf: `auth_failure_delay = 0\n${METRICS}${statsConf(stats)}${lmtpConf(lmtp)}service imap-login {\n  inet_listener imap {\n    port = ${imap}\n  }\n}\n` });
  if (!dv) { t.skip('Dovecot is not installed'); return null; }
  try {
    await drive(imap, lmtp);
    dovecotFamilies = await settled(stats);
  } finally { dv.stop(); }
  return dovecotFamilies;
}

function compare(expected: Family[], actual: Family[]): void {
  assert.deepEqual(actual.map(masked), expected.map(masked));
}

test('GET /metrics: the same families, label sets and counts as Dovecot 2.3.19 (pools mode)', { timeout: 120_000 }, async (t) => {
  const want = await dovecot(t);
  if (!want) return;
  const { families, srv } = await sealmailMetrics(t, false);
  compare(want, families);
  // the metric a filter of Dovecot's fills, Sealmail named at start when it cannot (none here): no warning for these
  assert.doesNotMatch(srv.output(), /metric \w+:/);
});

test('GET /metrics: the same as Dovecot 2.3.19 in the root-master process model', { timeout: 120_000, skip: process.getuid?.() === 0 ? false : 'needs root (the mode is root without mail_uid)' }, async (t) => {
  const want = await dovecot(t);
  if (!want) return;
  const { families } = await sealmailMetrics(t, true);
  compare(want, families);
});

test('a metric Sealmail cannot fill is warned by name at start and served with zero counts in Dovecot\'s shape', { timeout: 60_000 }, async (t) => {
  const stats = await freePort();
  const srv = await startSealmail(t, {
    extraConf: `metric imap_hib {\n  filter = event=imap_client_hibernated\n}\nmetric cmds {\n  filter = event=imap_command_finished\n  group_by = cmd_name bytes_in\n}\n${statsConf(stats)}`,
  });
  assert.match(srv.output(), /metric imap_hib: Sealmail sends no imap_client_hibernated events: its counts stay 0/);
  assert.match(srv.output(), /metric cmds: group_by bytes_in: Sealmail's imap_command_finished events have no bytes_in field/);
  const r = await scrape(stats);
  const fams = parseOpenMetrics(r.body);
  const hib = fams.find((f) => f.name === 'dovecot_imap_hib');
  assert.deepEqual(hib?.samples, ['dovecot_imap_hib_total 0']);
  assert.deepEqual(fams.find((f) => f.name === 'dovecot_imap_hib_duration_seconds')?.samples, ['dovecot_imap_hib_duration_seconds_total 0.000000']);
  assert.deepEqual(fams.find((f) => f.name === 'dovecot_cmds')?.samples, ['dovecot_cmds_count 0']);
});

test('the strict parser refuses what is not OpenMetrics', () => {
  assert.throws(() => parseOpenMetrics('# HELP a x\n# TYPE a counter\na_total 1\n'), /EOF/);
  assert.throws(() => parseOpenMetrics('# HELP a x\n# TYPE a counter\na_total{x="1",} 1\n# EOF\n'), /label/);
  assert.throws(() => parseOpenMetrics('# HELP a x\n# TYPE a counter\nb_total 1\n# EOF\n'), /no sample name/);
  assert.throws(() => parseOpenMetrics('# HELP a x\n# TYPE a counter\na_total 1\na_total 2\n# EOF\n'), /repeated/);
  assert.throws(() => parseOpenMetrics('# TYPE a counter\na_total 1\n# EOF\n'), /TYPE without/);
  assert.deepEqual(parseOpenMetrics('# HELP a x\n# TYPE a counter\na_total{k="v\\"w"} 1\n# EOF\n')[0].samples, ['a_total{k="v\\"w"} 1']);
});
