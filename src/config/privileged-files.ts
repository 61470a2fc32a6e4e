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
 * served from the record. A reload (SIGHUP, rereadConfigFiles) reads every
 * file afresh; one the server can no longer read (root-only, root given up)
 * keeps its recorded content, and the caller is told which.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const files = new Map<string, string>();
const globs = new Map<string, string[]>();
let recording = false; // only the server process records (startRecording); tools and tests read afresh
/** During a reload: the previous record, for files no longer readable (see rereadConfigFiles). */
let previous: { files: Map<string, string>; globs: Map<string, string[]>; kept: string[] } | null = null;

/** A file the reload cannot read any more (EACCES: root-only, root given up): its recorded content. */
function keptContent(path: string, e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const old = previous?.files.get(path);
  if (old === undefined || (code !== 'EACCES' && code !== 'EPERM')) throw e;
  previous!.kept.push(path);
  files.set(path, old);
  return old;
}

/** readFileSync(path, 'utf8') through the record (see header). */
export function readConfigFileSync(path: string): string {
  const hit = files.get(path);
  if (hit !== undefined) return hit;
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { return keptContent(path, e); }
  if (recording) files.set(path, text);
  return text;
}

export async function readConfigFile(path: string): Promise<string> {
  const hit = files.get(path);
  if (hit !== undefined) return hit;
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch (e) { return keptContent(path, e); }
  if (recording) files.set(path, text);
  return text;
}

/** An `!include` glob's matches through the record (conf.d may be unreadable later too). */
export function globConfigFiles(pattern: string, glob: (p: string) => string[]): string[] {
  const hit = globs.get(pattern);
  if (hit) return hit;
  let found = glob(pattern);
  // an unreadable conf.d during a reload matches nothing: its start-up matches stay
  if (!found.length && previous?.globs.get(pattern)?.length) found = previous.globs.get(pattern)!;
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

/**
 * A reload (SIGHUP): run `load` with every file read afresh and recorded
 * anew. A file that cannot be read any more keeps its recorded content
 * (returned in `kept`, for a warning); when `load` fails the old record is
 * restored, so the settings in force stay as they were.
 */
export async function rereadConfigFiles<T>(load: () => Promise<T>): Promise<{ value: T; kept: string[] }> {
  const old = { files: new Map(files), globs: new Map(globs), kept: [] as string[] };
  const wasRecording = recording;
  files.clear();
  globs.clear();
  previous = old;
  recording = true;
  try {
    return { value: await load(), kept: [...new Set(old.kept)] };
  } catch (e) {
    files.clear(); globs.clear();
    for (const [k, v] of old.files) files.set(k, v);
    for (const [k, v] of old.globs) globs.set(k, v);
    throw e;
  } finally {
    previous = null;
    recording = wasRecording;
  }
}
