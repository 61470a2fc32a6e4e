/**
 * The SASL mechanisms `auth_mechanisms` enables, as the login services and
 * the auth socket offer them: Sealmail implements the plaintext ones, PLAIN
 * and LOGIN, in the order the setting names them (Dovecot announces them in
 * that order). Others (CRAM-MD5, SCRAM, GSSAPI…) are left out: their hashes
 * or infrastructure are not there in ISPmail setups (dovecot-compat.md).
 */
import type { DovecotConfig } from '../config/settings.js';

export const SUPPORTED_MECHANISMS: readonly string[] = ['PLAIN', 'LOGIN'];

export function plaintextMechanisms(config: DovecotConfig): string[] {
  const named = config.get('auth_mechanisms').toUpperCase().split(/\s+/).filter(Boolean);
  return [...new Set(named)].filter((m) => SUPPORTED_MECHANISMS.includes(m));
}
