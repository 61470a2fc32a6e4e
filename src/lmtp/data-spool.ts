/**
 * Where an LMTP transaction's message waits between DATA/BDAT and delivery,
 * as Dovecot 2.3's lmtp keeps it (lmtp-commands.c cmd_data_begin with
 * lib/iostream-temp.c): in memory up to 128 kB
 * (IOSTREAM_TEMP_MAX_BUF_SIZE_DEFAULT), past that in a temporary file
 * `<mail_temp_dir>/dovecot.lmtp.<hostname>.<pid>.<16 hex>` created 0600 with
 * O_EXCL and unlinked at once (safe_mkstemp_hostpid + i_unlink, here both
 * synchronous, back to back), so nothing is left behind by a client that
 * drops mid-DATA or by a crash: the open descriptor is the file's only name.
 *
 * Unlike Dovecot, the spool file is encrypted, always: AES-256-GCM under a
 * key and nonce made for this one transaction and held only in memory. A
 * mail-crypt user's incoming mail is never plaintext on disk, and no
 * per-recipient decision is needed (a transaction has its spool before its
 * recipients' keys are looked at). Reading back checks the GCM tag, so a
 * spool changed underneath fails the delivery instead of storing garbage.
 *
 * The message is read back as a stream of chunks for each recipient (the
 * store's save takes an AsyncIterable), never as one Buffer, except where a
 * caller asks for `buffer()` (Sieve's body test, redirect).
 */
import { createCipheriv, createDecipheriv, randomBytes, type CipherGCM } from 'node:crypto';
import { close, openSync, read, unlinkSync, write } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/** Dovecot's IOSTREAM_TEMP_MAX_BUF_SIZE_DEFAULT: the in-memory part of a message. */
export const SPOOL_MEMORY_LIMIT = 128 * 1024;
/** Bytes gathered before one write to the spool file, and one read back. */
const BLOCK = 64 * 1024;

/** A finished message, read back as often as there are recipients. */
export interface SpooledMessage {
  /** Octets as stored (LF line ends). */
  readonly size: number;
  /** Octets with CRLF line ends: what Dovecot's quota_save_begin tests. */
  readonly crlfSize: number;
  /** The first bytes of the message (up to SPOOL_MEMORY_LIMIT), always in memory: its header, usually. */
  readonly head: Buffer;
  /** The whole message, chunk by chunk. */
  stream(): AsyncIterable<Buffer>;
  /** The whole message in one Buffer (a copy of its size): only where a caller needs it all at once. */
  buffer(): Promise<Buffer>;
}

export class SpoolError extends Error {}

export class MessageSpool implements SpooledMessage {
  /** The message while it is held in memory (all of it when no file was needed). */
  private mem: Buffer[] = [];
  private memSize = 0;
  /** The first SPOOL_MEMORY_LIMIT bytes, kept in memory whatever happens to the rest. */
  private headParts: Buffer[] = [];
  private headSize = 0;
  private fh: SpoolFile | null = null;
  /** The file's name when it was made (for log lines). */
  private path = '';
  private cipher: CipherGCM | null = null;
  private key: Buffer | null = null;
  private iv: Buffer | null = null;
  private tag: Buffer | null = null;
  private fileSize = 0;
  /** No file could be made: everything stays in memory, as Dovecot's iostream-temp does then. */
  private noFile = false;
  /** Plaintext gathered for the next write to the file (one block, filled by copying), and bytes being written. */
  private block: Buffer | null = null;
  private pendingSize = 0;
  private inFlight = 0;
  private writing: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private finished = false;
  private closed = false;
  private lastByte = -1;
  size = 0;
  crlfSize = 0;

  /**
   * `dir`: mail_temp_dir. `onError` gets Dovecot's log texts (a file that
   * cannot be made, a write that fails).
   */
  constructor(private readonly dir: string, private readonly onError: (msg: string) => void, private readonly memoryLimit = SPOOL_MEMORY_LIMIT) {}

  /** Appends message bytes (copied); never waits: `backlog` says how much is not on disk yet. */
  write(chunk: Buffer): void {
    if (this.finished || this.closed || !chunk.length) return;
    // bare LFs count twice in the CRLF size
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) {
      if ((i ? chunk[i - 1] : this.lastByte) !== 0x0d) this.crlfSize++;
    }
    this.lastByte = chunk[chunk.length - 1];
    this.size += chunk.length;
    this.crlfSize += chunk.length;
    if (this.failure) return;
    const inOrder = !this.cipher && !this.pendingSize && !this.inFlight;
    if (inOrder && (this.noFile || this.memSize + chunk.length <= this.memoryLimit)) {
      const copy = Buffer.from(chunk);
      this.mem.push(copy);
      this.memSize += copy.length;
      this.keepHead(copy);
      return;
    }
    this.keepHead(chunk);
    for (let off = 0; off < chunk.length;) {
      this.block ??= Buffer.allocUnsafe(BLOCK);
      const n = chunk.copy(this.block, this.pendingSize, off);
      off += n;
      this.pendingSize += n;
      if (this.pendingSize === BLOCK) this.flush();
    }
  }

  /** The first bytes stay in memory (shared with `mem` while the message is held there). */
  private keepHead(b: Buffer): void {
    if (this.headSize >= this.memoryLimit) return;
    const shared = this.mem[this.mem.length - 1] === b;
    const part = this.headSize + b.length <= this.memoryLimit ? b : b.subarray(0, this.memoryLimit - this.headSize);
    this.headParts.push(shared ? part : Buffer.from(part));
    this.headSize += part.length;
  }

  /** Bytes written but not yet on disk (the caller stops reading its socket above some mark). */
  get backlog(): number { return this.pendingSize + this.inFlight; }

  /** Resolves once everything written so far is on disk (or has failed). */
  async drain(): Promise<void> {
    if (this.pendingSize) this.flush();
    await this.writing;
  }

  private flush(): void {
    if (!this.block) return;
    const data = this.block.subarray(0, this.pendingSize);
    const n = this.pendingSize;
    this.block = null;
    this.pendingSize = 0;
    this.inFlight += n;
    this.writing = this.writing.then(async () => {
      try {
        if (this.failure || this.closed) return;
        if (!this.cipher && (this.noFile || !(await this.open()))) { this.mem.push(data); this.memSize += n; return; }
        const out = this.cipher!.update(data);
        await writeAll(this.fh!, out, this.fileSize);
        this.fileSize += out.length;
      } catch (e) {
        this.failure = new SpoolError(`write(${this.path}) failed: ${(e as Error).message}`);
        this.onError(this.failure.message);
        this.mem = [];
      } finally { this.inFlight -= n; }
    });
  }

  /** The temporary file, unlinked at once; what was in memory moves into it. False when it could not be made. */
  private async open(): Promise<boolean> {
    const path = join(this.dir, `dovecot.lmtp.${hostname()}.${process.pid}.${randomBytes(8).toString('hex')}`);
    // open and unlink back to back, synchronously as Dovecot does: two metadata calls, and no
    // event-loop turn between them in which a kill would leave a named file behind
    let fd: number;
    try {
      fd = openSync(path, 'wx+', 0o600);
    } catch (e) {
      this.onError(`safe_mkstemp(${path}) failed: ${(e as Error).message}`);
      this.noFile = true;
      return false;
    }
    const fh = new SpoolFile(fd);
    try { unlinkSync(path); } catch (e) {
      await fh.close();
      this.onError(`unlink(${path}) failed: ${(e as Error).message}`);
      this.noFile = true;
      return false;
    }
    if (this.closed) { await fh.close(); return false; }
    this.fh = fh;
    this.path = path;
    this.key = randomBytes(32);
    this.iv = randomBytes(12);
    this.cipher = createCipheriv('aes-256-gcm', this.key, this.iv);
    if (this.memSize) {
      const first = this.cipher.update(Buffer.concat(this.mem, this.memSize));
      this.mem = [];
      this.memSize = 0;
      await writeAll(fh, first, 0);
      this.fileSize = first.length;
    }
    return true;
  }

  /** The message is complete: everything on disk, ready to be read back. Throws SpoolError when it could not be kept. */
  async finish(): Promise<SpooledMessage> {
    this.finished = true;
    await this.drain();
    if (this.failure) throw this.failure;
    if (this.closed) throw new SpoolError('spool closed');
    if (this.cipher) {
      const last = this.cipher.final();
      if (last.length) { await writeAll(this.fh!, last, this.fileSize); this.fileSize += last.length; }
      this.tag = this.cipher.getAuthTag();
    }
    return this;
  }

  /** Is the message (partly) in a file? */
  get spilled(): boolean { return this.fh !== null; }

  get head(): Buffer {
    if (this.headParts.length > 1) this.headParts = [Buffer.concat(this.headParts, this.headSize)];
    return this.headParts[0] ?? Buffer.alloc(0);
  }

  async *stream(): AsyncIterable<Buffer> {
    // in memory (up to SPOOL_MEMORY_LIMIT): one piece, not the line-sized ones it arrived in (each piece costs every consumer a step)
    // (a message held in memory beyond it, with no spool file possible, is not copied again)
    if (!this.fh) {
      if (this.memSize > this.memoryLimit) yield* this.mem;
      else if (this.memSize) yield this.mem.length === 1 ? this.mem[0] : Buffer.concat(this.mem, this.memSize);
      return;
    }
    const d = createDecipheriv('aes-256-gcm', this.key!, this.iv!);
    d.setAuthTag(this.tag!);
    for (let pos = 0; pos < this.fileSize;) {
      if (this.closed || !this.fh) throw new SpoolError(`read(${this.path}) failed: spool closed`);
      const buf = Buffer.allocUnsafe(Math.min(BLOCK, this.fileSize - pos));
      const { bytesRead } = await this.fh.read(buf, 0, buf.length, pos);
      if (!bytesRead) throw new SpoolError(`read(${this.path}) failed: unexpected end of file`);
      pos += bytesRead;
      const out = d.update(buf.subarray(0, bytesRead));
      if (out.length) yield out;
    }
    try { d.final(); } catch { throw new SpoolError(`read(${this.path}) failed: spool file changed underneath`); }
  }

  async buffer(): Promise<Buffer> {
    if (!this.fh) return this.mem.length === 1 ? this.mem[0] : Buffer.concat(this.mem, this.memSize);
    const parts: Buffer[] = [];
    for await (const c of this.stream()) parts.push(c);
    return Buffer.concat(parts, this.size);
  }

  /** Drops the message: memory freed, the (already nameless) file closed. Safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.mem = [];
    this.block = null;
    this.headParts = [];
    await this.writing;
    this.key?.fill(0);
    await this.fh?.close();
    this.fh = null;
  }
}

/** The spool's descriptor (it has no name to reopen it by), with positioned reads and writes. */
class SpoolFile {
  constructor(private readonly fd: number) {}

  read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }> {
    return new Promise((res, rej) => read(this.fd, buf, off, len, pos, (e, n) => (e ? rej(e) : res({ bytesRead: n }))));
  }

  write(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesWritten: number }> {
    return new Promise((res, rej) => write(this.fd, buf, off, len, pos, (e, n) => (e ? rej(e) : res({ bytesWritten: n }))));
  }

  close(): Promise<void> {
    return new Promise((res) => close(this.fd, () => res()));
  }
}

async function writeAll(fh: SpoolFile, data: Buffer, position: number): Promise<void> {
  for (let off = 0; off < data.length;) {
    const { bytesWritten } = await fh.write(data, off, data.length - off, position + off);
    off += bytesWritten;
  }
}
