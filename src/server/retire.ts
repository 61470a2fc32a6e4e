/**
 * A root-master child after a reload (root-master.ts reload()): the master
 * sends it no new connection and tells it `retire`; it serves what it holds
 * to the end and then exits, as Dovecot's processes of the old
 * configuration do. Each child counts its live connections here.
 */
export class Liveness {
  private live = 0;
  private retiring = false;

  /** A connection (or a session's socket) this process serves until it closes. */
  track(s: { once(event: 'close', f: () => void): unknown }): void {
    this.live++;
    s.once('close', () => { this.live--; this.check(); });
  }

  /** Work that is not a connection (a copy being stored): the returned function ends it. */
  hold(): () => void {
    this.live++;
    let done = false;
    return () => { if (done) return; done = true; this.live--; this.check(); };
  }

  /** The master's `retire`: exit once nothing is left (at once when idle). */
  retire(): void {
    this.retiring = true;
    this.check();
  }

  private check(): void {
    if (!this.retiring || this.live > 0) return;
    // a moment for the last reply on the IPC channel to leave
    setTimeout(() => { if (this.live <= 0) process.exit(0); }, 100);
  }
}
