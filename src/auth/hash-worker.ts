/**
 * Password hashing (bcrypt, SHA-crypt, Argon2, PBKDF2) on worker threads
 * (src/util/worker-pool.ts): a failing job rejects with the scheme's own
 * message (never the hash or password).
 */
import { fileURLToPath } from 'node:url';
import { SchemeError } from './schemes/errors.js';
import { serveJobs, WorkerPool } from '../util/worker-pool.js';

export type HashJob =
  | { op: 'verify'; plain: Buffer; stored: string; defaultScheme: string; user: string; noScheme: boolean }
  | { op: 'hash'; scheme: string; plain: Buffer; rounds?: number; user: string };

// The schemes (bcryptjs, Argon2) are imported by the worker on its first
// job: the main thread, which only queues jobs, never loads them.
async function runJob(job: HashJob): Promise<unknown> {
  const { hashSync, verifySync } = await import('./schemes/registry.js');
  const plain = Buffer.from(job.plain);
  return job.op === 'verify' ? verifySync(plain, job.stored, job.defaultScheme, job.user, job.noScheme) : hashSync(job.scheme, plain, { rounds: job.rounds, user: job.user });
}

serveJobs(runJob, (e) => e instanceof SchemeError);

const pool = new WorkerPool<HashJob>(fileURLToPath(import.meta.url), (m) => new SchemeError(m));

export function runOnHashWorker(job: HashJob): Promise<unknown> {
  return pool.run(job);
}
