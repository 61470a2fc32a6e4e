/**
 * Loading a large configuration tree: 400 included files, ~6,000 settings,
 * services and filters. Ours (parse + typed view) vs `doveconf -n` on the same
 * tree (a whole process, as an admin runs it).
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { loadConfig, dumpNonDefault } from '../src/config/index.js';
import { medianMs, type BenchRow } from './harness.js';
import { findTool } from '../test/helpers/tools.js';

function makeTree(dir: string): string {
  mkdirSync(join(dir, 'conf.d'));
  for (let f = 0; f < 400; f++) {
    const lines: string[] = [];
    for (let i = 0; i < 5; i++) lines.push(`plugin {\n  bench_${f}_${i} = value ${i} \\\n    continued\n}`);
    lines.push(`service svc${f} {\n  executable = svc${f}\n  process_limit = ${f}\n  unix_listener svc${f} {\n    mode = 0600\n  }\n}`);
    lines.push(`protocol imap {\n  mail_plugins = $mail_plugins p${f}\n}`);
    lines.push(`namespace ns${f} {\n  prefix = NS${f}/\n  separator = /\n  mailbox M${f} {\n    auto = create\n  }\n}`);
    lines.push(`mail_max_userip_connections = ${f}`, `login_greeting = "greeting ${f} # not a comment"`);
    writeFileSync(join(dir, 'conf.d', `${String(f).padStart(3, '0')}-bench.conf`), lines.join('\n') + '\n');
  }
  const main = join(dir, 'dovecot.conf');
  writeFileSync(main, 'protocols = imap\n!include conf.d/*.conf\n');
  return main;
}

export default async function bench(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-config-'));
  try {
    const main = makeTree(dir);
    const ours = await medianMs(7, async () => dumpNonDefault(await loadConfig(main, { expandValues: false })));
    const doveconf = findTool('doveconf');
    const theirs = doveconf ? `${(await medianMs(7, () => execFileSync(doveconf, ['-n', '-c', main], { stdio: ['ignore', 'pipe', 'ignore'] }))).toFixed(1)} ms` : 'doveconf not installed';
    return [{ name: 'config tree: 400 files, ~6k settings, doveconf -n', sealmail: `${ours.toFixed(1)} ms`, dovecot: theirs, note: 'ours in-process; doveconf includes process start' }];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
