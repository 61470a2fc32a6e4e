/**
 * Who the server runs as. Like Dovecot's master: bind privileged ports as
 * root, then give up root for good before touching any mail, so no mail file
 * is ever created by uid 0. The target is the mail uid the configuration
 * names (mail_uid/mail_gid, names or numbers, as ISPmail's vmail 5000).
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

/**
 * Drop from root to the given identity (no-op when not root). Throws with a
 * clear reason when the identity is missing or is root itself.
 */
export function dropPrivileges(userSpec: string, groupSpec: string): Identity | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  if (!userSpec) {
    throw new Error('running as root needs mail_uid (e.g. mail_uid = vmail): Sealmail never creates mail files as root');
  }
  const user = resolveUser(userSpec);
  if (!user) throw new Error(`mail_uid: unknown user ${userSpec}`);
  const gid = groupSpec ? resolveGroup(groupSpec) : user.gid;
  if (gid === null) throw new Error(`mail_gid: unknown group ${groupSpec}`);
  if (user.uid === 0) throw new Error('mail_uid resolves to root: refusing to store mail as uid 0');
  process.setgroups?.([gid]);
  process.setgid!(gid);
  process.setuid!(user.uid);
  return { uid: user.uid, gid, name: user.name };
}
