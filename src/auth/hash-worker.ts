/**
 * Password hashing (bcrypt, SHA-crypt, Argon2, PBKDF2) on worker threads
 * (src/util/worker-pool.ts): a failing job rejects with the scheme's own
 * message (never the hash or password).
 */
import { fileURLToPath } from 'node:url';
import { SchemeError, hashSync, verifySync } from './schemes/registry.js';
import { serveJobs, WorkerPool } from '../util/worker-pool.js';

export type HashJob =
  | { op: 'verify'; plain: Buffer; stored: string; defaultScheme: string; user: string; noScheme: boolean }
  | { op: 'hash'; scheme: string; plain: Buffer; rounds?: number; user: string };

function runJob(job: HashJob): unknown {
  const plain = Buffer.from(job.plain);
  return job.op === 'verify' ? verifySync(plain, job.stored, job.defaultScheme, job.user, job.noScheme) : hashSync(job.scheme, plain, { rounds: job.rounds, user: job.user });
}

serveJobs(runJob, (e) => e instanceof SchemeError);

const pool = new WorkerPool<HashJob>(fileURLToPath(import.meta.url), (m) => new SchemeError(m));

export function runOnHashWorker(job: HashJob): Promise<unknown> {
  return pool.run(job);
}
