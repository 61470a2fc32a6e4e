/**
 * The second, simpler Dovecot parser (lib-settings/settings.c) used for the
 * files named by `args =` of SQL/LDAP/dict backends (dovecot-sql.conf.ext).
 * Its differences from the main parser are deliberate to match Dovecot: no
 * `<file` values, no `$setting` references (only `$ENV:NAME` tokens), blank
 * and comment lines inside a `\` continuation are skipped (the continuation
 * goes on), and sections are parsed but carry no meaning.
 */
import { readConfigFile } from './privileged-files.js';
import { ConfigError } from './errors.js';
import { unescape } from './lexer.js';

export interface ExtFile {
  path: string;
  values: Map<string, { value: string; line: number }>;
}

const isWhite = (c: string | undefined) => c === ' ' || c === '\t';

function stripComment(line: string): string {
  for (let p = 0; p < line.length; p++) {
    const c = line[p];
    if (c === '"' || c === "'") {
      p++;
      while (p < line.length && line[p] !== c) { if (line[p] === '\\') p++; p++; }
    } else if (c === '#') return line.slice(0, p);
  }
  return line;
}

export function parseExtText(path: string, text: string, env: NodeJS.ProcessEnv = process.env): ExtFile {
  const values = new Map<string, { value: string; line: number }>();
  let pending = '';
  let pendingLine = 0;
  let depth = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = stripComment(lines[i].replace(/\r$/, '')).trim();
    if (line === '') continue; // also inside a continuation: it goes on
    if (line.endsWith('\\')) {
      if (!pending) pendingLine = i + 1;
      pending += line.slice(0, -1).replace(/[ \t]+$/, '') + ' ';
      continue;
    }
    const lineNo = pending ? pendingLine : i + 1;
    line = pending + line;
    pending = '';
    if (line === '}') {
      if (depth === 0) throw new ConfigError(path, i + 1, "Unexpected '}'");
      depth--;
      continue;
    }
    let p = 0;
    while (p < line.length && !isWhite(line[p]) && line[p] !== '=') p++;
    const key = line.slice(0, p);
    while (isWhite(line[p])) p++;
    if (line[p] === '{' || (line[p] !== '=' && line.endsWith('{'))) { depth++; continue; }
    if (line[p] !== '=') throw new ConfigError(path, lineNo, "Expecting '='");
    let value = line.slice(p + 1).replace(/^[ \t]+/, '');
    const n = value.length;
    if (n > 1 && ((value[0] === '"' && value[n - 1] === '"') || (value[0] === "'" && value[n - 1] === "'"))) {
      value = unescape(value.slice(1, -1));
    } else if (value.includes('$ENV:')) {
      value = value.split(' ').map((t) => (t.startsWith('$ENV:') ? env[t.slice(5)] ?? '' : t)).join(' ');
    }
    if (depth === 0) values.set(key, { value, line: lineNo });
  }
  if (depth > 0) throw new ConfigError(path, lines.length, "Missing '}'");
  return { path, values };
}

export async function parseExtFile(path: string, env?: NodeJS.ProcessEnv): Promise<ExtFile> {
  let text: string;
  try {
    text = await readConfigFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(path, 0, `open(${path}) failed: ${err.code === 'ENOENT' ? 'No such file or directory' : err.code === 'EACCES' ? 'Permission denied' : err.message}`);
  }
  return parseExtText(path, text, env);
}

/** Dovecot refuses keys a backend does not know (`Unknown setting: KEY`). */
export function checkKnownKeys(ext: ExtFile, allowed: readonly string[]): void {
  for (const [key, v] of ext.values) {
    if (!allowed.includes(key)) throw new ConfigError(ext.path, v.line, `Unknown setting: ${key}`);
  }
}
