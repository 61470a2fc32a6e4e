/**
 * Pigeonhole's Sieve script quotas (sieve-storage.c, sieve-file-storage-quota.c):
 * `sieve_max_script_size` (default 1M; 0 = unlimited) for one script,
 * `sieve_quota_max_scripts` and `sieve_quota_max_storage` (0 = unlimited)
 * over the user's script directory, where a script of the same name is
 * replaced and so not counted. The answers are managesieved's
 * (managesieve-quota.c): `NO (QUOTA/MAXSIZE|MAXSCRIPTS|MAXSTORAGE) "…"`.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { parseSize } from '../config/values.js';

export interface ScriptQuotaLimits { maxScriptSize: number; maxScripts: number; maxStorage: number }

/** Pigeonhole's SIEVE_DEFAULT_MAX_SCRIPT_SIZE. */
export const DEFAULT_MAX_SCRIPT_SIZE = 1 << 20;

/** A size setting in Dovecot's syntax, `dflt` when unset or invalid (Pigeonhole then logs and keeps its default). */
export function sizeSetting(v: string | undefined, dflt: number): number {
  if (v === undefined || v.trim() === '') return dflt;
  const n = parseSize(v);
  return typeof n === 'number' ? n : dflt;
}

/** The limits from plugin settings (userdb fields already merged in by the caller). */
export function scriptQuotaLimits(plugin: Record<string, string>): ScriptQuotaLimits {
  const count = Number((plugin.sieve_quota_max_scripts ?? '').trim());
  return {
    maxScriptSize: sizeSetting(plugin.sieve_max_script_size, DEFAULT_MAX_SCRIPT_SIZE),
    maxScripts: Number.isInteger(count) && count > 0 ? count : 0,
    maxStorage: sizeSetting(plugin.sieve_quota_max_storage, 0),
  };
}

export interface QuotaRefusal { code: 'QUOTA/MAXSIZE' | 'QUOTA/MAXSCRIPTS' | 'QUOTA/MAXSTORAGE'; text: string }

export function tooLarge(limit: number): QuotaRefusal {
  return { code: 'QUOTA/MAXSIZE', text: `Script is too large (max ${limit} bytes).` };
}

/**
 * sieve_storage_quota_havespace: would storing `size` bytes as `name` in
 * `dir` stay within the limits? Scripts are counted in readdir order and
 * the first limit passed is the answer, as in Pigeonhole (the active link,
 * when it lives in the directory, is not a script).
 */
export async function checkScriptQuota(dir: string, activeLink: string, name: string, size: number, q: ScriptQuotaLimits): Promise<QuotaRefusal | null> {
  if (q.maxScriptSize > 0 && size > q.maxScriptSize) return tooLarge(q.maxScriptSize);
  if (!q.maxScripts && !q.maxStorage) return null;
  let entries: string[];
  try { entries = await fs.readdir(dir); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') entries = [];
    else throw e;
  }
  let count = 1;
  let storage = size;
  for (const f of entries) {
    if (!f.endsWith('.sieve') || f.length === 6) continue;
    const path = join(dir, f);
    if (path === activeLink) continue;
    if (f.slice(0, -6) === name) continue; // replaced
    if (q.maxScripts) {
      if (++count > q.maxScripts) return { code: 'QUOTA/MAXSCRIPTS', text: `Script count quota exceeded (max ${q.maxScripts} scripts).` };
    }
    if (q.maxStorage) {
      let st;
      try { st = await fs.stat(path); } catch { continue; }
      storage += st.size;
      if (storage > q.maxStorage) return { code: 'QUOTA/MAXSTORAGE', text: `Script storage quota exceeded (max ${q.maxStorage} bytes).` };
    }
  }
  return null;
}
