/**
 * imap_logout_format (Dovecot's imap-client.c client_stats): the counters
 * the imap process's last line of a session reports, `in=%i out=%o
 * deleted=%{deleted} expunged=%{expunged} trashed=%{trashed}
 * hdr_count=%{fetch_hdr_count} hdr_bytes=%{fetch_hdr_bytes}
 * body_count=%{fetch_body_count} body_bytes=%{fetch_body_bytes}` by default.
 * `in` is what the imap process read of the client's input: as Dovecot's
 * parser leaves the line end of the last command unread until the next
 * command, the LOGOUT line's CRLF is not counted. deleted, expunged,
 * trashed and the fetch counters are not kept by Sealmail yet and are 0.
 */
import type { DovecotConfig } from '../config/settings.js';
import { expandLogFormat, trailingEol } from '../util/percent-vars.js';

export class ImapSessionStats {
  /** Bytes read after login. */
  input = 0;
  /** Bytes written after login (the login reply included). */
  output = 0;
  /** Line-end bytes of the last chunk read, not yet consumed by Dovecot's parser. */
  private pendingEol = 0;

  countInput(d: Buffer): void {
    this.input += d.length;
    this.pendingEol = trailingEol(d);
  }

  /** The variables of imap_logout_format. */
  vars(): Record<string, string> {
    return {
      i: String(this.input - this.pendingEol), o: String(this.output),
      input: String(this.input - this.pendingEol), output: String(this.output),
      deleted: '0', expunged: '0', trashed: '0', autoexpunged: '0',
      fetch_hdr_count: '0', fetch_hdr_bytes: '0', fetch_body_count: '0', fetch_body_bytes: '0',
    };
  }
}

/** imap_logout_format expanded; an unknown variable expands to nothing. */
export function imapLogoutLine(config: DovecotConfig, stats: ImapSessionStats): string {
  return expandLogFormat(config.get('imap_logout_format', { protocol: 'imap' }), stats.vars());
}
