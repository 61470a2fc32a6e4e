/**
 * Users and groups by name or number, as getpwnam(3)/getgrnam(3) give them,
 * read from /etc/passwd and /etc/group (Node has no getpwnam). Used where
 * the configuration or the userdb names a system account (mail_uid = vmail).
 */
import { readFileSync } from 'node:fs';

export interface Identity { uid: number; gid: number; name: string }

function lookup(file: string, key: string): string[] | null {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { return null; }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === key || (/^\d+$/.test(key) && f[2] === key)) return f;
  }
  return null;
}

/** Resolve a user (name or number) like getpwnam(3) through /etc/passwd. */
export function resolveUser(spec: string): Identity | null {
  const f = lookup('/etc/passwd', spec);
  if (f) return { uid: Number(f[2]), gid: Number(f[3]), name: f[0] };
  return /^\d+$/.test(spec) ? { uid: Number(spec), gid: Number(spec), name: spec } : null;
}

export function resolveGroup(spec: string): number | null {
  const f = lookup('/etc/group', spec);
  if (f) return Number(f[2]);
  return /^\d+$/.test(spec) ? Number(spec) : null;
}

