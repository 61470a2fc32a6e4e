/**
 * `npm run bench`: runs every bench/*.bench.js (or only those whose name
 * contains argv[2]) and prints one table. `npm run bench -- goals [quick]`:
 * issue 15's workloads and the table of its goals (bench/goals.ts).
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Bench, BenchRow } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2] ?? '';
const rows: BenchRow[] = [];
let goalsTable: string[] = [];
if (filter === 'goals') {
  const quick = process.argv[3] === 'quick';
  const { goals, QUICK_SIZES } = await import('./goals.js');
  if (quick) for (const [k, v] of Object.entries(QUICK_SIZES)) process.env[k] ??= v;
  const r = await goals(quick);
  rows.push(...r.rows);
  goalsTable = r.table;
}
const files = filter === 'goals' ? [] : readdirSync(here).filter((f) => f.endsWith('.bench.js') && f.includes(filter)).sort();
for (const f of files) {
  process.stderr.write(`running ${f} …\n`);
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { default: Bench };
  try {
    rows.push(...(await mod.default()));
  } catch (e) {
    rows.push({ name: f, sealmail: `failed: ${(e as Error).message}` });
  }
}
const cols: (keyof BenchRow)[] = ['name', 'sealmail', 'dovecot', 'note'];
const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
console.log(line(cols as string[]));
console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
for (const r of rows) console.log(line(cols.map((c) => String(r[c] ?? ''))));
if (goalsTable.length) console.log(`\n${goalsTable.join('\n')}`);
