/**
 * Who the server runs as. Like Dovecot's master: bind privileged ports as
 * root, then give up root for good before touching any mail, so no mail file
 * is ever created by uid 0. The target is the mail uid the configuration
 * names (mail_uid/mail_gid, names or numbers, as ISPmail's vmail 5000).
 */
import { resolveGroup, resolveUser, type Identity } from '../util/passwd.js';

export { resolveGroup, resolveUser, type Identity };

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
