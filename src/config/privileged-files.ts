/**
 * Files the server reads as root before it drops privileges, kept for later.
 *
 * Dovecot reads its configuration (and `<file` values such as ssl_key) in the
 * root-run config process, and the auth process reads `passdb { args =
 * /etc/dovecot/dovecot-sql.conf.ext }` before giving up root. ISPmail relies on
 * that: it makes dovecot-sql.conf.ext and the TLS key readable by root only.
 * Sealmail runs as the mail uid after start-up, so every such file is read
 * once while still root (recorded here) and later reads — a lazy SQL
 * connection, an IMAP worker process loading the same configuration — are
 * served from the record. A change to these files needs a restart, as in
 * Dovecot (which needs a reload).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const files = new Map<string, string>();
const globs = new Map<string, string[]>();
let recording = false; // only the server process records (startRecording); tools and tests read afresh

/** readFileSync(path, 'utf8') through the record (see header). */
export function readConfigFileSync(path: string): string {
  const hit = files.get(path);
  if (hit !== undefined) return hit;
  const text = readFileSync(path, 'utf8');
  if (recording) files.set(path, text);
  return text;
}

export async function readConfigFile(path: string): Promise<string> {
  const hit = files.get(path);
  if (hit !== undefined) return hit;
  const text = await readFile(path, 'utf8');
  if (recording) files.set(path, text);
  return text;
}

/** An `!include` glob's matches through the record (conf.d may be unreadable later too). */
export function globConfigFiles(pattern: string, glob: (p: string) => string[]): string[] {
  const hit = globs.get(pattern);
  if (hit) return hit;
  const found = glob(pattern);
  if (recording) globs.set(pattern, found);
  return found;
}

/** Read a file now (while root) so later reads find it; a missing file is left for the later read to report. */
export function preloadConfigFile(path: string): void {
  try { readConfigFileSync(path); } catch { /* reported where it is used */ }
}

/** Start recording: the server does this before it reads its configuration. */
export function startRecording(): void { recording = true; }

/** Stop recording: called when root is dropped (nothing read afterwards is privileged). */
export function stopRecording(): void { recording = false; }

/** The record, to hand to a worker process. */
export interface ConfigFilesSnapshot { files: Record<string, string>; globs: Record<string, string[]> }

export function configFilesSnapshot(): ConfigFilesSnapshot { return { files: Object.fromEntries(files), globs: Object.fromEntries(globs) }; }

/** Install a record received from the master. */
export function installConfigFiles(snapshot: ConfigFilesSnapshot): void {
  for (const [k, v] of Object.entries(snapshot.files)) files.set(k, v);
  for (const [k, v] of Object.entries(snapshot.globs)) globs.set(k, v);
  recording = false;
}
