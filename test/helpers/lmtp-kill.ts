/**
 * Crash-safety harness for LMTP delivery (issue #7 item 2): several LMTP
 * clients deliver numbered messages while the Sealmail server is killed
 * with SIGKILL and restarted over and over. Every message carries a unique
 * marker in its Message-ID and a closing `END <marker>` line, so the
 * Maildir can afterwards be checked for acknowledged messages missing or
 * stored twice, and for partial files. Shared by the test and the bench.
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { sealmailJs } from './paths.js';
import { spawnOwned } from './children.js';

export interface KillRunStats {
  attempts: number;
  acked: Set<string>;
  kills: number;
  /** Time from the restart until the ports accepted connections. */
  restartMs: number[];
  /** Connect-to-250 time of each acknowledged delivery. */
  latencyMs: number[];
}

export function markerMessage(marker: string, size: number): Buffer {
  const head = `From: load@example.net\r\nTo: rcpt@example.org\r\nSubject: kill test ${marker}\r\nMessage-ID: <${marker}@kill.test>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
  const body = line.repeat(Math.max(1, Math.floor((size - head.length) / line.length)));
  return Buffer.from(`${head}${body}END ${marker}\r\n`);
}

export const markerOf = (msg: string): string | null => /^Message-ID: <([^@>]+)@kill\.test>/im.exec(msg)?.[1] ?? null;
export const completeFor = (msg: string, marker: string): boolean => msg.replace(/\r\n/g, '\n').endsWith(`\nEND ${marker}\n`);

/** One LMTP transaction; resolves true only on the 250 after DATA. Any error or close is false. */
export function lmtpDeliver(port: number, rcpt: string, message: Buffer, timeoutMs = 20_000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    let step = 0;
    let done = false;
    const finish = (ok: boolean) => { if (done) return; done = true; clearTimeout(timer); sock.destroy(); resolve(ok); };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        if (/^\d{3}-/.test(l)) continue;
        const code = Number(l.slice(0, 3));
        switch (step++) {
          case 0: if (code !== 220) return finish(false); sock.write('LHLO killtest\r\n'); break;
          case 1: if (code !== 250) return finish(false); sock.write('MAIL FROM:<load@example.net>\r\n'); break;
          case 2: if (code !== 250) return finish(false); sock.write(`RCPT TO:<${rcpt}>\r\n`); break;
          case 3: if (code !== 250) return finish(false); sock.write('DATA\r\n'); break;
          case 4: if (code !== 354) return finish(false); sock.write(Buffer.concat([message, Buffer.from('.\r\n')])); break;
          case 5: if (code === 250) { sock.write('QUIT\r\n'); finish(true); } else finish(false); break;
        }
      }
    });
  });
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); r(true); });
    s.once('error', () => r(false));
  });
}

export class RestartableSealmail {
  child: ChildProcess | null = null;
  output = '';
  /** `ports`: all must accept connections before the server counts as up (LMTP, and IMAP served by workers). */
  constructor(private readonly conf: string, private readonly ports: number[]) {}

  async start(): Promise<void> {
    // own group, killed when the test process ends even if no kill9()/stop() comes (children.ts)
    const child = spawnOwned(null, process.execPath, [sealmailJs, '-c', this.conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d) => { this.output = (this.output + d).slice(-20000); });
    child.stderr!.on('data', (d) => { this.output = (this.output + d).slice(-20000); });
    const end = Date.now() + 30_000;
    while (!(await Promise.all(this.ports.map(portOpen))).every(Boolean)) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`sealmail did not start:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async kill9(): Promise<void> { await this.signal('SIGKILL'); }

  async stop(): Promise<void> { await this.signal('SIGTERM'); }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(sig);
    await exited;
  }
}

/**
 * `clients` loops deliver to `rcpt` (a new marker for every attempt, so a
 * retry never duplicates an acknowledged message) while the server is
 * SIGKILLed `kills` times at random points and restarted.
 */
export async function killDuringDelivery(srv: RestartableSealmail, o: { port: number; rcpt: string; clients: number; kills: number; size: number; prefix: string; minUpMs?: number; maxUpMs?: number; tailMs?: number }): Promise<KillRunStats> {
  const stats: KillRunStats = { attempts: 0, acked: new Set(), kills: 0, restartMs: [], latencyMs: [] };
  let stop = false;
  let seq = 0;
  const client = async (n: number): Promise<void> => {
    while (!stop) {
      const marker = `${o.prefix}-${n}-${++seq}`;
      stats.attempts++;
      const t0 = Date.now();
      if (await lmtpDeliver(o.port, o.rcpt, markerMessage(marker, o.size))) { stats.acked.add(marker); stats.latencyMs.push(Date.now() - t0); }
      else await new Promise((r) => setTimeout(r, 10));
    }
  };
  const running = Array.from({ length: o.clients }, (_, n) => client(n));
  const minUp = o.minUpMs ?? 200;
  const maxUp = o.maxUpMs ?? 1200;
  for (let k = 0; k < o.kills; k++) {
    await new Promise((r) => setTimeout(r, minUp + Math.random() * (maxUp - minUp)));
    await srv.kill9();
    stats.kills++;
    const t0 = Date.now();
    await srv.start();
    stats.restartMs.push(Date.now() - t0);
  }
  // let the restarted server take a few more deliveries, then stop the clients
  await new Promise((r) => setTimeout(r, o.tailMs ?? 300));
  stop = true;
  await Promise.all(running);
  return stats;
}
