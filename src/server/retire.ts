/**
 * A root-master child after a reload (root-master.ts reload()): the master
 * sends it no new connection and tells it `retire`; it serves what it holds
 * to the end and then exits, as Dovecot's processes of the old
 * configuration do. Each child tells this which connections it serves.
 *
 * A connection counts until its socket is destroyed: the flag is read
 * rather than a 'close' listener counted, because a session handed on
 * (imap Session.detach() for the proxy) drops its socket's listeners.
 */
import { flushStats } from '../util/stats-events.js';
import type { Socket } from 'node:net';

/** How often a retiring process looks whether its last connection has gone. */
const RETIRE_CHECK_MS = 1000;

export class Liveness {
  private readonly sockets = new Set<Socket>();
  private holds = 0;
  private timer: NodeJS.Timeout | null = null;

  /** A connection this process serves until its socket is destroyed. */
  track(s: Socket): void {
    this.sockets.add(s);
    s.once('close', () => { this.sockets.delete(s); if (this.timer) this.check(); });
  }

  /** Work that is not a connection (a copy being stored): the returned function ends it. */
  hold(): () => void {
    this.holds++;
    let done = false;
    return () => { if (done) return; done = true; this.holds--; if (this.timer) this.check(); };
  }

  /** The master's `retire`: exit once nothing is left (at once when idle). */
  retire(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), RETIRE_CHECK_MS);
    this.check();
  }

  private check(): void {
    for (const s of this.sockets) if (s.destroyed) this.sockets.delete(s);
    if (this.holds > 0 || this.sockets.size > 0) return;
    // a moment for the last reply (and the last metrics batch, stats-events.ts) on the IPC channel to leave
    flushStats();
    setTimeout(() => process.exit(0), 100);
  }
}
