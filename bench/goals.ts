/**
 * `npm run bench -- goals [quick]`: every workload of issue 15 in one run,
 * Sealmail beside Dovecot 2.3 (W1 sequence, multi-client mix, LMTP
 * deliveries/s, whole-tree memory with the idle IDLE sessions, the 100k
 * INBOX and the login storm, sealadm per call), their detail rows, then ONE
 * table of every ratio the issue's Goals list names: goal, Sealmail's
 * figure, Dovecot's, the ratio Sealmail/Dovecot, met or not. `quick` sets
 * smaller sizes for a check of the machinery (any size set in the
 * environment wins); the default sizes are the issue's.
 */
import { benchContext, machineLine, type BenchRow } from './harness.js';

/** The sizes of the quick variant (the environment's own settings win). */
export const QUICK_SIZES: Record<string, string> = {
  W1_N: '60', MIX_SECS: '8', MIX_MESSAGES: '500', LMTP_BENCH_N: '120',
  LOAD_BENCH_CONNS: '200', LOAD_BENCH_BIG: '10000', LOAD_BENCH_REPEAT: '1',
};

interface Goal { goal: string; sealmail: string; dovecot: string; ratio: number; /** true when met; null when not measured */ met: boolean | null; note?: string }

const log = (s: string) => process.stderr.write(`${s}\n`);
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 0) : '–');

/** Runs one component; a failure becomes a row and leaves its goals unmeasured. */
async function part<T>(name: string, rows: BenchRow[], fn: () => Promise<{ rows: BenchRow[] } & T>): Promise<T | null> {
  log(`goals: running ${name} …`);
  const t0 = Date.now();
  try {
    const r = await fn();
    rows.push(...r.rows);
    // the rows as they come, so that a run cut short still leaves its figures in the log
    log(`goals: ${name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s\n${r.rows.map((x) => `  ${x.name}: ${x.sealmail} | ${x.dovecot ?? ''} | ${x.note ?? ''}`).join('\n')}`);
    return r;
  } catch (e) {
    rows.push({ name, sealmail: `failed: ${(e as Error).message}` });
    log(`goals: ${name} failed: ${(e as Error).stack}`);
    return null;
  }
}

export async function goals(quick: boolean): Promise<{ rows: BenchRow[]; table: string[] }> {
  // modules read their sizes when loaded: imported after the quick sizes are set
  const { w1Bench } = await import('./w1-sequence.bench.js');
  const { mixBench, mixErrors } = await import('./imap-mix.bench.js');
  const { opsPerSec, p99, PROFILES } = await import('./imap-mix.js');
  const { lmtpThroughput } = await import('./lmtp.bench.js');
  const { loadBench } = await import('./imap-load.bench.js');
  const { sealadmFigures } = await import('./sealadm.bench.js');
  const started = new Date();
  const rows: BenchRow[] = [];
  const out: Goal[] = [];
  const missing = (goal: string) => out.push({ goal, sealmail: 'not measured', dovecot: '', ratio: NaN, met: null });
  const lower = (goal: string, s: number, d: number, target: number, unit: string, note?: string) =>
    out.push({ goal, sealmail: `${f1(s)} ${unit}`, dovecot: `${f1(d)} ${unit}`, ratio: s / d, met: Number.isFinite(d) ? s / d <= target : null, note });
  const higher = (goal: string, s: number, d: number, target: number, unit: string, note?: string) =>
    out.push({ goal, sealmail: `${f1(s)} ${unit}`, dovecot: `${f1(d)} ${unit}`, ratio: s / d, met: Number.isFinite(d) ? s / d >= target : null, note });

  const w1 = await part('W1 sequence (w1-sequence.bench)', rows, w1Bench);
  for (const [i, label, target] of [[0, 'plain', 1.0], [1, 'P-521', 0.5]] as const) {
    const p = w1?.pairs[i];
    if (p?.d) lower(`W1 time (imaplib, 2 rounds), ${label} user: ratio ≤ ${target}`, p.s.total, p.d.total, target, 's');
    else missing(`W1 time, ${label} user`);
  }

  const mix = await part('multi-client mix (imap-mix.bench)', rows, mixBench);
  for (const [key, target] of [['shared50', 1.0], ['login10', 2.0]] as const) {
    const p = mix?.pairs.find((x) => x.profile === PROFILES[key]);
    if (!p?.d) { missing(`mix throughput, ${key}`); continue; }
    const extra = key === 'login10' ? `; logins/s ${f1(opsPerSec(p.s, 'LOGIN'))} vs ${f1(opsPerSec(p.d, 'LOGIN'))}` : `; FETCH/s ${f1(opsPerSec(p.s, 'FETCH_META') + opsPerSec(p.s, 'FETCH_BODY'))} vs ${f1(opsPerSec(p.d, 'FETCH_META') + opsPerSec(p.d, 'FETCH_BODY'))}`;
    higher(`mix "${p.profile.name}": all commands/s, ratio ≥ ${target}`, opsPerSec(p.s), opsPerSec(p.d), target, 'ops/s', `${p.s.secs.toFixed(0)} s window${extra}`);
    const se = mixErrors(p.s);
    const de = mixErrors(p.d);
    out.push({ goal: `mix "${p.profile.name}": protocol errors (no more than Dovecot's)`, sealmail: String(se), dovecot: String(de), ratio: NaN, met: se <= de, note: 'out-of-order tags, unexpected NO/BAD, BYE, FETCH beyond EXISTS, timeouts, refused sessions' });
    for (const op of ['APPEND', 'FETCH_META', 'FETCH_BODY', 'STORE'] as const) {
      lower(`mix "${p.profile.name}": p99 ${op} ≤ Dovecot's`, p99(p.s, op), p99(p.d, op), 1.0, 'ms');
    }
  }

  const lmtp = await part('LMTP deliveries/s (lmtp.bench)', rows, async () => {
    const { t, cleanup } = benchContext();
    try { return await lmtpThroughput(t); } finally { await cleanup(); }
  });
  for (const f of lmtp?.figures ?? []) {
    const p521 = f.label.includes('P-521');
    higher(`LMTP deliveries/s, ${f.label}, ${f.clients} clients: ratio ≥ 1.0${p521 ? ' (as close as the platform allows)' : ''}`, f.s, f.d, 1.0, '/s', p521 ? "bounded by Node's bundled OpenSSL P-521 (README, ec-ops rows)" : undefined);
  }
  if (!lmtp) missing('LMTP deliveries/s');

  const load = await part('memory, idle sessions, login storm (imap-load.bench)', rows, loadBench);
  if (load?.figures.big.d) {
    const { s, d } = load.figures.big;
    const mib = (k: number) => k / 1024;
    lower('whole-tree RSS at rest: ratio ≤ 2', mib(s.rest.rssKiB), mib(d.rest.rssKiB), 2, 'MiB', `PSS ${f1(mib(s.rest.pssKiB))} vs ${f1(mib(d.rest.pssKiB))} MiB`);
    for (const [n, m] of s.selected) {
      const dm = d.selected.get(n)!;
      lower(`whole-tree RSS, ${process.env.LOAD_BENCH_BIG ?? 100_000}-message INBOX selected by ${n}: ratio ≤ 2`, mib(m.rssKiB), mib(dm.rssKiB), 2, 'MiB', `PSS ${f1(mib(m.pssKiB))} vs ${f1(mib(dm.pssKiB))} MiB`);
    }
  } else missing('whole-tree RSS at rest / 100k INBOX');
  if (load?.figures.idle.d) {
    const { s, d } = load.figures.idle;
    lower(`PSS per idle IDLE session (${process.env.LOAD_BENCH_CONNS ?? 2000} sessions): ratio ≤ 1/20`, s.pssPer, d.pssPer, 0.05, 'KiB', `RSS ${f1(s.rssPer)} vs ${f1(d.rssPer)} KiB`);
  } else missing('per idle IDLE session');
  if (load?.figures.storms.d) {
    const max = (xs: { max: number }[]) => Math.max(...xs.map((x) => x.max));
    lower(`longest NOOP stall during a login storm (worst of ${load.figures.storms.s.length}): ratio ≤ 1`, max(load.figures.storms.s), max(load.figures.storms.d), 1.0, 'ms');
  } else missing('login-storm stall');

  const adm = await part('sealadm per call (sealadm.bench)', rows, sealadmFigures);
  for (const f of adm?.figures ?? []) {
    out.push({ goal: `sealadm ${f.label}, ${f.shape}: under 300 ms`, sealmail: `${f1(f.ours)} ms`, dovecot: `${f1(f.theirs)} ms (doveadm)`, ratio: f.ours / f.theirs, met: f.ours < 300 });
  }
  if (!adm?.figures.length) missing('sealadm per call');

  const cols = ['goal', 'Sealmail', 'Dovecot 2.3.19', 'ratio S/D', 'met', 'note'];
  const cells = out.map((g) => [g.goal, g.sealmail, g.dovecot, Number.isFinite(g.ratio) ? g.ratio.toFixed(2) : '–', g.met === null ? '–' : g.met ? 'yes' : 'no', g.note ?? '']);
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  // the sizes this run was given, so that the header names the command that reproduces it
  const sizes = Object.entries(process.env).filter(([k]) => /^(W1|MIX|LMTP_BENCH|LOAD_BENCH)_/.test(k) && !(quick && QUICK_SIZES[k] === process.env[k])).map(([k, v]) => `${k}=${v} `).join('');
  const table = [
    `Issue 15 goals, ${started.toISOString().slice(0, 16).replace('T', ' ')}–${new Date().toISOString().slice(11, 16)} UTC; ${machineLine()}; \`${sizes}npm run bench -- goals${quick ? ' quick' : ''}\``,
    '',
    line(cols),
    '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|',
    ...cells.map(line),
    '',
    `${out.filter((g) => g.met).length} of ${out.length} goals met.`,
  ];
  return { rows, table };
}
