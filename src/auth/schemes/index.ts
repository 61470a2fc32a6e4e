/**
 * Password schemes, the async face: verification and hashing run on the hash
 * worker pool so bcrypt, SHA-crypt rounds and Argon2 never stall the event
 * loop (a login storm must not freeze other sessions). The schemes themselves
 * (registry.ts) load only on the workers.
 */
import { runOnHashWorker } from '../hash-worker.js';

export { SchemeError } from './errors.js';

export interface VerifyOptions {
  defaultScheme: string;
  user: string;
  /** `password_noscheme`: a leading `{` is not a scheme prefix */
  noScheme?: boolean;
}

export async function verifyPassword(plain: Buffer, stored: string, opts: VerifyOptions): Promise<boolean> {
  return (await runOnHashWorker({ op: 'verify', plain, stored, defaultScheme: opts.defaultScheme, user: opts.user, noScheme: opts.noScheme ?? false })) as boolean;
}

export async function hashPassword(scheme: string, plain: Buffer, opts: { rounds?: number; user?: string } = {}): Promise<string> {
  return (await runOnHashWorker({ op: 'hash', scheme, plain, rounds: opts.rounds, user: opts.user ?? '' })) as string;
}
