/**
 * Dovecot's zlib plugin settings as zlib-plugin.c reads them when a mail
 * user is created: with `zlib` in mail_plugins every message read is checked
 * for compression (by its magic bytes); `plugin { zlib_save = gz|bz2|lz4|zstd }`
 * compresses new mail (APPEND, LMTP, sealadm save; COPY keeps the file) at
 * `zlib_save_level` (the handler's default when unset or out of range, with
 * Dovecot's error text). Sealmail reads gz, bz2, lz4, zstd and xz, and
 * writes gz and lz4 itself; for bz2 and zstd, which it reads but cannot write, it saves gz instead (Dovecot reads every
 * format whatever zlib_save says) and says so at start. `deflate` (raw, which
 * neither Dovecot nor Sealmail can recognise when reading) and unknown or
 * unbuildable handlers save uncompressed, as Dovecot does after its error.
 */
import { splitPlugins } from '../../config/mail-plugins.js';
import type { DovecotConfig } from '../../config/settings.js';
import { FORMATS, isCompressionFormat, type CompressionFormat } from './formats.js';

/** The default output bound of one decompressed message (a decompression bomb stops here). */
export const MAX_DECOMPRESSED = 1024 * 1024 * 1024;

export interface CompressionSettings {
  /** Message bodies are checked for compression when read (`zlib` in mail_plugins). */
  read: boolean;
  /** What new mail is written as; null = uncompressed. */
  save: { format: CompressionFormat; level: number } | null;
  /** The largest plaintext a compressed message may decompress to. */
  maxOutput: number;
  /** The user, for error messages. */
  user: string;
}

export interface ResolvedZlib {
  settings: CompressionSettings | null;
  /** Said once at start (global settings) or per user (userdb mail_plugins). */
  warnings: string[];
}

/** The zlib plugin as configured for a user whose mail_plugins are `plugins`. */
export function resolveZlib(user: string, plugins: readonly string[], plugin: Record<string, string>): ResolvedZlib {
  if (!plugins.includes('zlib')) return { settings: null, warnings: [] };
  const warnings: string[] = [];
  const name = plugin.zlib_save ?? '';
  let save: CompressionSettings['save'] = null;
  if (name !== '') {
    if (!isCompressionFormat(name) || name === 'xz') {
      // Dovecot's own error; it then saves uncompressed
      warnings.push(`zlib_save: ${isCompressionFormat(name) ? 'Support not compiled in for handler' : 'Unknown handler'}: ${name}`);
    } else if (name === 'deflate') {
      warnings.push('zlib_save = deflate: raw deflate has no header, so neither Dovecot nor Sealmail would recognise such mail when reading it; Sealmail saves uncompressed instead');
    } else {
      const lv = FORMATS[name].levels!;
      const raw = plugin.zlib_save_level ?? '';
      let level = lv.def;
      if (raw !== '') {
        const n = /^-?\d+$/.test(raw) ? Number(raw) : NaN;
        if (Number.isInteger(n) && n >= lv.min && n <= lv.max) level = n;
        else warnings.push(`zlib_save_level: Level must be between ${lv.min}..${lv.max}`);
      }
      if (FORMATS[name].write) save = { format: name, level };
      else {
        const gz = FORMATS.gz.levels!;
        const gzLevel = level >= gz.min && level <= gz.max ? level : gz.def;
        warnings.push(`zlib_save = ${name}: Sealmail reads ${name} but cannot write it; new mail is saved as gz (level ${gzLevel}), which Dovecot reads as well`);
        save = { format: 'gz', level: gzLevel };
      }
    }
  }
  return { settings: { read: true, save, maxOutput: MAX_DECOMPRESSED, user }, warnings };
}

/** Start-up warnings for the zlib plugin of the configured protocols (a userdb's own mail_plugins are seen per user). */
export function zlibStartupWarnings(config: DovecotConfig): string[] {
  const out = new Set<string>();
  for (const protocol of ['imap', 'lmtp']) {
    for (const w of resolveZlib('', splitPlugins(config.get('mail_plugins', { protocol })), config.plugin({ protocol })).warnings) out.add(w);
  }
  return [...out];
}
