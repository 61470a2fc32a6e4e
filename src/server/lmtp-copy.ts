/**
 * How an LMTP recipient's copy travels from the LMTP front process
 * (lmtp-process.ts, default_internal_user) to the mail process of the
 * recipient's uid (mail-process.ts) in the root master mode, without the
 * message ever being whole in memory in any process: Dovecot's lmtp reads
 * its iostream-temp file under the user's effective uid; here the reading
 * stays in the LMTP process and the bytes go over a stream socket.
 *
 * Why this design (and not the spool's descriptor and key handed to the
 * mail process): the spool file is 0600 and owned by the LMTP process's
 * user, and its AES-GCM key exists only in that process's memory; both stay
 * there. The mail process only ever sees the plaintext of the copy it is to
 * store, as a stream it reads at its own pace, which is exactly what it is
 * entitled to. Node can pass sockets between processes but not a file's
 * descriptor, and a socket gives backpressure for free. The master carries
 * no message bytes: it routes a socket, as it routes a login's.
 *
 *   LMTP process ─ 'deliver' (head, sizes) ─▶ master (uid checks) ─ 'copy-go' key ─▶ LMTP process
 *   LMTP process connects to <base_dir>/sealmail-login/lmtp-copy (0600, LMTP
 *   process's user), sends the key line ─▶ master ─ 'deliver' + the socket ─▶ mail process
 *
 * On that socket the mail process asks for the message with one byte `S`
 * per reading (a delivery reads it once per target mailbox, plus once when
 * Sieve needs it whole); the LMTP process answers each `S` with exactly
 * `size` bytes, read from its spool and decrypted block by block. A
 * message that fits its in-memory head (SPOOL_MEMORY_LIMIT) goes inside the
 * 'deliver' message itself, with no socket. The 250 is sent only on the
 * mail process's reply after its commit; a mail process that dies mid-copy
 * closes the socket and the master answers 451 for that recipient alone.
 */
import { connect, type Socket } from 'node:net';
import type { SpooledMessage } from '../lmtp/data-spool.js';

/** The byte that asks for the message once more. */
const SEND = 0x53; // 'S'
/** The key line a copy socket must start with: 32 hex digits and LF. */
const KEY_LINE_MAX = 64;
/**
 * Readings of one copy the LMTP process serves: a delivery reads its copy
 * once per mailbox it saves to (Pigeonhole's sieve_max_actions is 32) and
 * once for Sieve's body test or a redirect; past this a mail process asking
 * again is cut off (it cannot make the shared LMTP process decrypt its
 * message without end).
 */
const MAX_READINGS = 64;

/** Does this message travel over a copy socket (true) or inside the 'deliver' message (false)? */
export const streamed = (m: SpooledMessage): boolean => m.size > m.head.length;

/**
 * LMTP process: connects to the master's copy socket, names the copy by
 * `key`, then sends the whole message each time the mail process asks.
 * Returns the socket (the caller destroys it once the copy is answered).
 */
export function offerCopy(path: string, key: string, message: SpooledMessage, onError: (text: string) => void): Socket {
  const s = connect(path);
  let asked = 0;
  let readings = 0;
  let sending = false;
  let closed = false;
  s.on('error', () => s.destroy());
  s.on('close', () => { closed = true; });
  const writable = () => new Promise<void>((resolve) => {
    const done = () => { s.off('drain', done); s.off('close', done); resolve(); };
    s.on('drain', done);
    s.on('close', done);
  });
  const send = async () => {
    if (sending) return;
    sending = true;
    try {
      while (asked > 0 && !closed) {
        asked--;
        for await (const chunk of message.stream()) {
          if (closed) break;
          if (!s.write(chunk)) await writable();
        }
      }
    } catch (e) {
      // the spool failed (changed underneath, closed): the mail process sees the stream end short and fails the copy
      onError(`copy of the message to the mail process failed: ${(e as Error).message}`);
      s.destroy();
    } finally { sending = false; }
  };
  s.on('data', (d: Buffer) => {
    for (const b of d) if (b !== SEND) { s.destroy(); return; }
    readings += d.length;
    if (readings > MAX_READINGS) { onError(`the mail process asked for its copy more than ${MAX_READINGS} times`); s.destroy(); return; }
    asked += d.length;
    void send();
  });
  s.write(`${key}\n`);
  return s;
}

/**
 * Master: the key line a copy socket starts with, then nothing more is read
 * (the LMTP process sends no message byte before the mail process asks).
 */
export function readCopyKey(s: Socket, onKey: (key: string) => void): void {
  let buf = '';
  s.on('error', () => s.destroy());
  const onData = (d: Buffer) => {
    buf += d.toString('latin1');
    const nl = buf.indexOf('\n');
    if (nl < 0) { if (buf.length > KEY_LINE_MAX) s.destroy(); return; }
    s.off('data', onData);
    s.pause();
    if (nl !== buf.length - 1) { s.destroy(); return; }
    onKey(buf.slice(0, nl));
  };
  s.on('data', onData);
  s.resume();
}

/**
 * Mail process: the message as a SpooledMessage read from the copy socket
 * (or, when not `streamed`, the head alone). Each stream() asks for one
 * more transfer; one abandoned halfway has its rest skipped by the next.
 */
export class CopyFromSocket implements SpooledMessage {
  /** Bytes of the current transfer not read yet. */
  private left = 0;
  /** Which stream() owns the socket's current transfer. */
  private generation = 0;
  private ended = false;
  private wake: (() => void) | null = null;

  constructor(private readonly sock: Socket | null, readonly size: number, readonly crlfSize: number, readonly head: Buffer) {
    if (!sock) return;
    sock.pause();
    const poke = () => { const w = this.wake; this.wake = null; w?.(); };
    sock.on('readable', poke);
    sock.on('end', () => { this.ended = true; poke(); });
    sock.on('close', () => { this.ended = true; poke(); });
    sock.on('error', () => { this.ended = true; poke(); });
  }

  /** The next bytes of the transfer (at most `max`), null when the socket ended. */
  private async read(max: number): Promise<Buffer | null> {
    for (;;) {
      const b = this.sock!.read() as Buffer | null;
      if (b) {
        if (b.length > max) { this.sock!.unshift(b.subarray(max)); return b.subarray(0, max); }
        return b;
      }
      // (a socket that ended before this reader was made has no 'end' left to tell it)
      if (this.ended || this.sock!.readableEnded || this.sock!.destroyed) return null;
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }

  async *stream(): AsyncIterable<Buffer> {
    if (!this.sock) { yield this.head; return; }
    const mine = ++this.generation;
    while (this.left > 0) { // the rest of an abandoned reading
      const b = await this.read(this.left);
      if (!b) throw new Error('the LMTP process closed the copy stream');
      this.left -= b.length;
    }
    this.sock.write(Buffer.of(SEND));
    this.left = this.size;
    while (this.left > 0) {
      const b = await this.read(this.left);
      if (!b) throw new Error(`the LMTP process closed the copy stream ${this.size - this.left} bytes into ${this.size}`);
      if (mine !== this.generation) throw new Error('copy stream read twice at once');
      this.left -= b.length;
      yield b;
    }
  }

  async buffer(): Promise<Buffer> {
    if (!this.sock) return this.head;
    const parts: Buffer[] = [];
    for await (const c of this.stream()) parts.push(c);
    return Buffer.concat(parts, this.size);
  }
}
