/**
 * `sealadm dump [-t <type>] <path>` as doveadm-dump.c, for the two types an
 * admin points it at on a Sealmail server: mail-crypt files
 * (doveadm-dump-dcrypt-file.c: the container's flags, format and the digest
 * of the key it is encrypted to) and mail-crypt key strings
 * (doveadm-dump-dcrypt-key.c over dcrypt_key_string_get_info). Sealmail has
 * no Dovecot index, log or dbox files, so the other types are not dumped.
 * Without -t the type is detected as doveadm does: the first type whose test
 * accepts the file. Like doveadm, a file that fails to dump once its type is
 * known prints an error and still exits 0.
 */
import { open } from 'node:fs/promises';
import { CommandError, EX_DATAERR, EX_USAGE, UsageError, type CliCommand, type CommandContext } from '../command.js';
import { getopt } from '../args.js';
import { headerBytesNeeded, isEncrypted, parseHeader } from '../../crypt/container.js';
import { CryptError, keyId, legacyKeyId, parsePrivateKeyString, parsePublicKeyString, privateFromScalar, type PublicKey } from '../../crypt/keys.js';

/** doveadm's builtin dump types, in its order (print_dump_types). */
const DOVEADM_TYPES = ['dbox', 'index', 'log', 'mailboxlog', 'thread', 'imapzlib', 'dcrypt-file', 'dcrypt-key', 'multiplex'];
/** doveadm-dump-dcrypt-key.c's KEY_BUF_SIZE: only this much of a key file is read. */
const KEY_BUF_SIZE = 4096;

interface DumpType {
  name: string;
  /** Whether the file is of this type (autodetection); never prints. */
  test(path: string): Promise<boolean>;
  dump(path: string, ctx: CommandContext): Promise<void>;
}

const errnoText = (e: NodeJS.ErrnoException): string => {
  const texts: Record<string, string> = { ENOENT: 'No such file or directory', EACCES: 'Permission denied', EISDIR: 'Is a directory' };
  return texts[e.code ?? ''] ?? e.message;
};

// --- dcrypt-file ---

type FileInfo = { ok: true; flags: number; version: 1 | 2; digest: string } | { ok: false; error?: string };

/** What i_stream_create_decrypt_callback learns from the file's header (flags, format, key digest) or its read error. */
async function fileInfo(path: string): Promise<FileInfo> {
  let head: Buffer;
  try {
    const fh = await open(path, 'r');
    try {
      head = Buffer.alloc(0);
      // the header is read as far as it says it goes (bounded by the file)
      for (let need = 14; need > head.length;) {
        const buf = Buffer.alloc(need - head.length);
        const { bytesRead } = await fh.read(buf, 0, buf.length, head.length);
        if (bytesRead === 0) break;
        head = Buffer.concat([head, buf.subarray(0, bytesRead)]);
        if (head.length >= 9 && !isEncrypted(head)) break;
        if (head.length >= 14) need = Math.max(head.length, headerBytesNeeded(head));
      }
    } finally { await fh.close(); }
  } catch (e) {
    return { ok: false, error: `open(${path}) failed: ${errnoText(e as NodeJS.ErrnoException)}` };
  }
  if (head.length === 0) return { ok: false }; // an empty file: EOF, no error
  if (!isEncrypted(head.subarray(0, 9)) || head.length < 9) {
    if (head.length < 9 && Buffer.from('CRYPTED\x03\x07', 'latin1').subarray(0, head.length).equals(head)) return { ok: false, error: 'Decryption error: Input truncated in decryption header' };
    return { ok: false, error: 'Stream is not encrypted (invalid magic)' };
  }
  try {
    if (headerBytesNeeded(head) > head.length) return { ok: false, error: 'Decryption error: Input truncated in decryption header' };
    const h = parseHeader(head);
    return h.version === 2 ? { ok: true, flags: h.flags, version: 2, digest: h.keyId } : { ok: true, flags: 0, version: 1, digest: h.keyId };
  } catch (e) {
    if (e instanceof CryptError) return { ok: false, error: `Decryption error: ${e.message}` };
    throw e;
  }
}

const dcryptFile: DumpType = {
  name: 'dcrypt-file',
  async test(path) { return (await fileInfo(path)).ok; },
  async dump(path, ctx) {
    const info = await fileInfo(path);
    if (!info.ok) {
      if (info.error) ctx.err.write(`Error: read(${path}) failed: ${info.error}\n`);
      return;
    }
    const lines: string[] = [];
    if (info.flags & 1) lines.push('flags: IO_STREAM_ENC_INTEGRITY_HMAC');
    if (info.flags & 2) lines.push('flags: IO_STREAM_ENC_INTEGRITY_AEAD');
    if (info.flags & 4) lines.push('flags: IO_STREAM_ENC_INTEGRITY_NONE');
    if (info.flags & 8) lines.push('flags: IO_STREAM_ENC_VERSION_1');
    lines.push(`format: DECRYPT_FORMAT_V${info.version}`);
    lines.push(`decrypt key digest: ${info.digest}`);
    ctx.out.write(lines.join('\n') + '\n');
  },
};

// --- dcrypt-key ---

interface KeyInfo { version: 1 | 2; kind: 'PUBLIC' | 'PRIVATE'; enc: 'NONE' | 'KEY' | 'PASSWORD'; encHash?: string; keyHash: string }

/** dcrypt_key_string_get_info for Dovecot's own key format (the one mail-crypt stores). */
function keyStringInfo(buf: string): KeyInfo {
  if (buf.startsWith('-----BEGIN ') || buf.startsWith('{')) throw new CryptError('PEM and JWK keys are not supported by sealadm dump');
  if (buf.startsWith('1:')) throw new CryptError('Dovecot v1 key format uses tab to separate fields');
  if (buf.startsWith('2\t')) throw new CryptError('Dovecot v2 key format uses colon to separate fields');
  // t_strsplit(key_data, ":\t"): either separator, empty fields kept; the last field keeps the file's line end
  const f = buf.split(/[:\t]/);
  if (f.length < 2) throw new CryptError('Unknown key format');
  const last = f[f.length - 1];
  const n = f.length;
  if (f[0] === '1') {
    if (n === 4) return { version: 1, kind: 'PUBLIC', enc: 'NONE', keyHash: last };
    if (n === 5 && f[2] === '0') return { version: 1, kind: 'PRIVATE', enc: 'NONE', keyHash: last };
    if (n === 6 && f[2] === '2') return { version: 1, kind: 'PRIVATE', enc: 'PASSWORD', keyHash: last };
    if (n === 7 && f[2] === '1') return { version: 1, kind: 'PRIVATE', enc: 'KEY', encHash: f[n - 2], keyHash: last };
    throw new CryptError('Invalid dovecot v1 encoding');
  }
  if (f[0] === '2') {
    if (n === 3) return { version: 2, kind: 'PUBLIC', enc: 'NONE', keyHash: last };
    if (n === 5 && f[2] === '0') return { version: 2, kind: 'PRIVATE', enc: 'NONE', keyHash: last };
    if (n === 9 && f[2] === '2') return { version: 2, kind: 'PRIVATE', enc: 'PASSWORD', keyHash: last };
    if (n === 11 && f[2] === '1') return { version: 2, kind: 'PRIVATE', enc: 'KEY', encHash: f[n - 2], keyHash: last };
    throw new CryptError('Invalid dovecot v2 encoding');
  }
  throw new CryptError('Invalid dovecot key version');
}

/** The first KEY_BUF_SIZE bytes as the C string doveadm reads (up to a NUL). */
async function keyBuffer(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(KEY_BUF_SIZE);
    const { bytesRead } = await fh.read(buf, 0, KEY_BUF_SIZE, 0);
    const nul = buf.subarray(0, bytesRead).indexOf(0);
    return buf.subarray(0, nul < 0 ? bytesRead : nul).toString('latin1');
  } finally { await fh.close(); }
}

function keyMetadata(k: PublicKey): string[] {
  // mail-crypt keys are EC; both ids as dcrypt_key_id_*(sha256) and dcrypt_key_id_*_old compute them
  return ['key type: DCRYPT_KEY_EC', `v2 hash: ${keyId(k)}`, `v1 hash: ${legacyKeyId(k)}`];
}

const dcryptKey: DumpType = {
  name: 'dcrypt-key',
  async test(path) {
    try { keyStringInfo(await keyBuffer(path)); return true; } catch { return false; }
  },
  async dump(path, ctx) {
    let buf: string;
    try { buf = await keyBuffer(path); } catch (e) {
      ctx.err.write(`Error: open(${path}) failed: ${errnoText(e as NodeJS.ErrnoException)}\n`);
      return;
    }
    let info: KeyInfo;
    try { info = keyStringInfo(buf); } catch (e) {
      if (!(e instanceof CryptError)) throw e;
      ctx.err.write(`Error: dcrypt_key_string_get_info failed: ${e.message}\n`);
      return;
    }
    const lines = [
      'format: DCRYPT_FORMAT_DOVECOT',
      `version: DCRYPT_KEY_VERSION_${info.version}`,
      `kind: DCRYPT_KEY_KIND_${info.kind}`,
      `encryption_type: DCRYPT_KEY_ENCRYPTION_TYPE_${info.enc}`,
    ];
    if (info.encHash !== undefined) lines.push(`encryption_key_hash: ${info.encHash}`);
    lines.push(`key_hash: ${info.keyHash}`);
    ctx.out.write(lines.join('\n') + '\n');
    const data = buf.replace(/[\r\n\t ]+$/, '');
    if (info.kind === 'PUBLIC') {
      try { ctx.out.write(keyMetadata(parsePublicKeyString(data)).join('\n') + '\n'); } catch (e) {
        if (!(e instanceof CryptError)) throw e;
        ctx.err.write(`Error: dcrypt_key_load_public failed: ${e.message}\n`);
      }
    } else if (info.enc === 'NONE') {
      try {
        const p = parsePrivateKeyString(data);
        const k = privateFromScalar(p.curve, p.v === 2 && p.enc === 0 ? p.scalar : p.data);
        ctx.out.write(keyMetadata(k).join('\n') + '\n');
      } catch (e) {
        if (!(e instanceof CryptError)) throw e;
        ctx.err.write(`Error: dcrypt_key_load_private failed: ${e.message}\n`);
      }
    }
  },
};

/** doveadm's test order: the types before these (dbox, index, log …) cannot match a mail-crypt file or key. */
const TYPES: DumpType[] = [dcryptFile, dcryptKey];

export const dumpCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 't:');
    if (!rest.length) throw new UsageError('missing <path>');
    const path = rest[0];
    const type = opts.get('t') as string | undefined;
    let dump: DumpType | undefined;
    if (type !== undefined) {
      dump = TYPES.find((d) => d.name === type);
      if (!dump) {
        if (DOVEADM_TYPES.includes(type)) throw new CommandError(`Fatal: sealadm dump: type ${type} is not supported (Sealmail keeps no Dovecot ${type} files)`, EX_USAGE);
        throw new CommandError(`Available dump types: ${DOVEADM_TYPES.join(' ')}\nFatal: Unknown type: ${type}`, EX_USAGE);
      }
    } else {
      for (const d of TYPES) if (await d.test(path)) { dump = d; break; }
      if (!dump) throw new CommandError(`Fatal: Can't autodetect file type: ${path}`, EX_DATAERR);
      ctx.out.write(`Detected file type: ${dump.name}\n`);
    }
    await dump.dump(path, ctx);
    return 0;
  },
};
