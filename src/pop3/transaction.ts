/**
 * POP3's TRANSACTION and UPDATE states (RFC 1939 §5, §6) with the reply
 * texts of Dovecot's pop3 (pop3-commands.c): CAPA, STAT, LIST, UIDL, RETR,
 * TOP, DELE, RSET, NOOP, QUIT (LAST with pop3_enable_last). Message
 * numbers are parsed as get_msgnum does ("Invalid message number: x",
 * "Noise after message number: …", "There's no message N.", "Message is
 * deleted."); a message that vanished under a RETR is "Message N
 * expunged.", and asking for it again counts as a bad command. RETR and
 * TOP stream the plaintext through message-encoder.ts, waiting for the
 * client to read (a slow reader holds only its own session). The counts
 * of pop3_logout_format are kept here.
 */
import type { Maildrop } from './maildrop.js';
import { Pop3MessageEncoder } from './message-encoder.js';
import { UidlFormatError } from './uidl.js';

/** POP3_CAPABILITY_REPLY after login (no USER/SASL/STLS there). */
export const POP3_CAPABILITY = 'CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n';

export type CommandResult = 'ok' | 'bad' | 'quit' | 'disconnect';

export interface Pop3Output {
  /** Queue bytes for the client. */
  write(b: string | Buffer): void;
  /** Resolves once the client has read what is queued (backpressure). */
  drained(): Promise<void>;
}

/** What pop3_logout_format reports (pop3-client.c client_stats). */
export interface Pop3Stats {
  topCount: number; topBytes: number; retrCount: number; retrBytes: number;
  deletedCount: number; deletedBytes: number; messageCount: number; messageBytes: number;
  /** QUIT committed the changes (Dovecot's delete_success: %d and deleted bytes are 0 otherwise). */
  deleteSuccess: boolean;
}

export class Pop3Transaction {
  private readonly deleted = new Set<number>();
  private deletedSize = 0;
  private readonly seenNow = new Set<number>();
  private topCount = 0;
  private topBytes = 0;
  private retrCount = 0;
  private retrBytes = 0;
  private highestExpungedFetch = -1;
  private deleteSuccess = false;
  private lastSeenMsn = 0;

  constructor(private readonly drop: Maildrop, private readonly out: Pop3Output, private readonly enableLast: boolean) {
    for (let i = 0; i < drop.messages.length; i++) if (drop.seen(i)) this.lastSeenMsn = i + 1;
  }

  get stats(): Pop3Stats {
    return {
      topCount: this.topCount, topBytes: this.topBytes, retrCount: this.retrCount, retrBytes: this.retrBytes,
      deletedCount: this.deleted.size, deletedBytes: this.deletedSize, messageCount: this.drop.messages.length,
      messageBytes: this.drop.totalSize, deleteSuccess: this.deleteSuccess,
    };
  }

  /** Messages RETRieved this session that were not \Seen: what a session ending without QUIT still marks. */
  get pendingSeen(): boolean { return this.seenNow.size > 0; }

  private line(s: string): void { this.out.write(s + '\r\n'); }

  /** get_msgnum: a 0-based message number, or null after the error reply. */
  private msgnum(args: string, thenSpace: boolean): { n: number; rest: string } | null {
    if (!(args[0] >= '0' && args[0] <= '9')) { this.line(`-ERR Invalid message number: ${args}`); return null; }
    let i = 0;
    while (i < args.length && args[i] >= '0' && args[i] <= '9') i++;
    const digits = args.slice(0, i);
    const rest = args.slice(i);
    // str_parse_uint: an unsigned int; more is "too large" (the text after the digits shown)
    if (digits.length > 10 || Number(digits) > 0xffffffff) { this.line(`-ERR Message number too large: ${rest}`); return null; }
    if ((rest[0] ?? '') !== (thenSpace ? ' ' : '')) { this.line(`-ERR Noise after message number: ${rest}`); return null; }
    const num = Number(digits);
    if (num === 0 || num > this.drop.messages.length) { this.line(`-ERR There's no message ${num}.`); return null; }
    if (this.deleted.has(num - 1)) { this.line('-ERR Message is deleted.'); return null; }
    return { n: num - 1, rest: rest.replace(/^ +/, '') };
  }

  async command(name: string, args: string): Promise<CommandResult> {
    args = args.replace(/^ +/, '');
    switch (name) {
      case 'CAPA': this.out.write(`+OK\r\n${POP3_CAPABILITY}.\r\n`); return 'ok';
      case 'STAT': this.line(`+OK ${this.drop.messages.length - this.deleted.size} ${this.drop.totalSize - this.deletedSize}`); return 'ok';
      case 'NOOP': this.line('+OK'); return 'ok';
      case 'LAST':
        if (!this.enableLast) break;
        this.line(`+OK ${this.lastSeenMsn}`);
        return 'ok';
      case 'DELE': {
        const m = this.msgnum(args, false); if (!m) return 'bad';
        this.deleted.add(m.n);
        this.deletedSize += this.drop.sizes[m.n];
        this.line('+OK Marked to be deleted.');
        return 'ok';
      }
      case 'LIST': {
        if (args === '') {
          this.line(`+OK ${this.drop.messages.length - this.deleted.size} messages:`);
          for (let i = 0; i < this.drop.messages.length; i++) {
            if (this.deleted.has(i)) continue;
            this.line(`${i + 1} ${this.drop.sizes[i]}`);
            if (i % 256 === 255) await this.out.drained();
          }
          this.line('.');
          return 'ok';
        }
        const m = this.msgnum(args, false); if (!m) return 'bad';
        this.line(`+OK ${m.n + 1} ${this.drop.sizes[m.n]}`);
        return 'ok';
      }
      case 'UIDL': return this.uidl(args);
      case 'RETR': {
        const m = this.msgnum(args, false); if (!m) return 'bad';
        this.retrCount++;
        if (this.lastSeenMsn < m.n + 1) this.lastSeenMsn = m.n + 1;
        return this.fetch(m.n, null);
      }
      case 'TOP': {
        const m = this.msgnum(args, true); if (!m) return 'bad';
        const lines = this.size(m.rest); if (lines === null) return 'bad';
        this.topCount++;
        return this.fetch(m.n, lines);
      }
      case 'RSET':
        this.lastSeenMsn = 0;
        this.deleted.clear();
        this.deletedSize = 0;
        this.seenNow.clear();
        if (this.enableLast) await this.drop.unseeAll();
        this.line('+OK');
        return 'ok';
      case 'QUIT': {
        await this.commit();
        this.deleteSuccess = true;
        this.line(this.deleted.size ? '+OK Logging out, messages deleted.' : '+OK Logging out.');
        return 'quit';
      }
    }
    this.line(`-ERR Unknown command: ${name}`);
    return 'bad';
  }

  /** get_size: TOP's line count. */
  private size(args: string): number | null {
    if (!(args[0] >= '0' && args[0] <= '9')) { this.line(`-ERR Invalid size: ${args}`); return null; }
    let i = 0;
    while (i < args.length && args[i] >= '0' && args[i] <= '9') i++;
    const rest = args.slice(i);
    if (i > 20 || BigInt(args.slice(0, i)) > 0xffffffffffffffffn) { this.line(`-ERR Size too large: ${rest}`); return null; }
    if (rest !== '') { this.line(`-ERR Noise after size: ${rest}`); return null; }
    return Number(args.slice(0, i));
  }

  private async uidl(args: string): Promise<CommandResult> {
    if (args === '') {
      this.line('+OK');
      let all: string[];
      try { all = await this.drop.uidls(); } catch (e) { return this.uidlFailed(e); }
      for (let i = 0; i < all.length; i++) {
        if (this.deleted.has(i)) continue;
        this.line(`${i + 1} ${all[i]}`);
        if (i % 256 === 255) await this.out.drained();
      }
      this.line('.');
      return 'ok';
    }
    const m = this.msgnum(args, false); if (!m) return 'bad';
    let all: string[];
    try { all = await this.drop.uidls(); } catch (e) { return this.uidlFailed(e); }
    this.line(`+OK ${m.n + 1} ${all[m.n]}`);
    return 'ok';
  }

  /** Dovecot disconnects when a UIDL cannot be made ("POP3 UIDLs couldn't be listed"). */
  private uidlFailed(e: unknown): CommandResult {
    if (!(e instanceof UidlFormatError)) throw e;
    throw new Pop3Disconnect(`${e.message}`, 'POP3 UIDLs couldn\'t be listed');
  }

  /** RETR (`bodyLines` null) and TOP: the reply line, the encoded text, the final dot. */
  private async fetch(n: number, bodyLines: number | null): Promise<CommandResult> {
    const enc = new Pop3MessageEncoder(bodyLines);
    const it = this.drop.read(n)[Symbol.asyncIterator]();
    let first: IteratorResult<Buffer>;
    try {
      first = await it.next();
    } catch (e) {
      if (!isExpunged(e)) throw e;
      this.line(`-ERR Message ${n + 1} expunged.`);
      // fetching an expunged message again counts as bad (Dovecot: so a looping client gets disconnected)
      if (n <= this.highestExpungedFetch) return 'bad';
      this.highestExpungedFetch = n;
      return 'ok';
    }
    if (bodyLines === null && !this.drop.seen(n) && !this.drop.settings.noFlagUpdates) this.seenNow.add(n);
    const head = bodyLines === null ? `+OK ${this.drop.sizes[n]} octets\r\n` : '+OK\r\n';
    let bytes = head.length;
    this.out.write(head);
    for (let r = first; !r.done && !enc.done; r = await it.next()) {
      const b = enc.push(r.value);
      bytes += b.length;
      this.out.write(b);
      await this.out.drained();
    }
    if (enc.done) await it.return?.();
    const tail = enc.end();
    bytes += tail.length;
    this.out.write(tail);
    if (bodyLines === null) this.retrBytes += bytes; else this.topBytes += bytes;
    this.line('.');
    return 'ok';
  }

  /** UPDATE state: DELEted messages removed, RETRieved ones \Seen. */
  private async commit(): Promise<void> {
    await this.drop.commit(this.deleted, this.seenNow);
    this.seenNow.clear();
  }

  /** A session ending without QUIT keeps its \Seen changes (Dovecot's client_destroy), never its deletions. */
  async commitSeenOnly(): Promise<void> {
    if (this.seenNow.size) await this.drop.commit(new Set(), this.seenNow);
    this.seenNow.clear();
  }
}

/** Ends the session: the log reason and what Dovecot logs. */
export class Pop3Disconnect extends Error {
  constructor(readonly logError: string, readonly reason: string) { super(reason); }
}

function isExpunged(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: string }).code === 'EXPUNGED';
}
