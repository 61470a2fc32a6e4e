/**
 * The memory of a whole server: its master and every process below it
 * (Sealmail's login/auth/mail/lmtp children; Dovecot's imap-login, imap,
 * auth, anvil, log, config, stats …), read from /proc. RSS counts a page
 * shared by N processes N times; PSS (smaps_rollup) counts 1/N of it in
 * each, so the PSS sum is the tree's share of physical memory.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** `root` and all its descendants (by PPid), live ones only. */
export function treePids(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // fields after "(comm) ": state ppid …
      const f = readFileSync(`/proc/${e}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
      if (f[0] === 'Z') continue;
      const ppid = Number(f[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch { /* exited meanwhile */ }
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** The first three words of a process's command line, directories stripped ("node main.js --mail-process", "imap-login"). */
function processName(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).map((a) => a.replace(/^.*\/(?=[^/]+$)/, '')).slice(0, 3).join(' ');
}

export interface TreeMemory { rssKiB: number; pssKiB: number; processes: number; byName: Map<string, { n: number; rssKiB: number; pssKiB: number }> }

/** Summed Rss and Pss (kB, from smaps_rollup) of the tree below `root`, with a breakdown by process name. */
export function treeMemory(root: number): TreeMemory {
  const m: TreeMemory = { rssKiB: 0, pssKiB: 0, processes: 0, byName: new Map() };
  for (const p of treePids(root)) {
    let rollup: string;
    let name: string;
    try {
      rollup = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      name = processName(p);
    } catch { continue; } // gone
    const rss = Number(/^Rss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
    const pss = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
    m.rssKiB += rss;
    m.pssKiB += pss;
    m.processes++;
    const b = m.byName.get(name) ?? { n: 0, rssKiB: 0, pssKiB: 0 };
    b.n++; b.rssKiB += rss; b.pssKiB += pss;
    m.byName.set(name, b);
  }
  return m;
}

/** One line per process name: "name ×n rss/pss MiB", largest PSS first (for the bench's stderr log). */
export function describeTree(m: TreeMemory): string {
  const mib = (k: number) => (k / 1024).toFixed(1);
  return [...m.byName].sort((a, b) => b[1].pssKiB - a[1].pssKiB)
    .map(([name, b]) => `  ${name} ×${b.n}: RSS ${mib(b.rssKiB)} MiB, PSS ${mib(b.pssKiB)} MiB`).join('\n');
}

/** CPU time (user + system, ms) of each process of the tree below `root`, by pid, with its name. */
export function treeCpu(root: number): Map<number, { name: string; ms: number }> {
  const out = new Map<number, { name: string; ms: number }>();
  const tick = 1000 / 100; // USER_HZ
  for (const p of treePids(root)) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
      out.set(p, { name: processName(p), ms: (Number(f[11]) + Number(f[12])) * tick });
    } catch { /* gone */ }
  }
  return out;
}

/** "name: N ms" per process name, CPU used between two treeCpu reads (processes that ended meanwhile are not counted). */
export function describeCpu(before: Map<number, { name: string; ms: number }>, after: Map<number, { name: string; ms: number }>): string {
  const by = new Map<string, number>();
  for (const [pid, a] of after) by.set(a.name, (by.get(a.name) ?? 0) + a.ms - (before.get(pid)?.ms ?? 0));
  return [...by].filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]).map(([n, ms]) => `${n}: ${ms} ms`).join(', ');
}
