/**
 * A small pool of worker threads for password hashing (bcrypt, SHA-crypt,
 * Argon2, PBKDF2). Jobs queue when every worker is busy; a failing job
 * rejects with the scheme's own message (never the hash or password). A
 * worker holds the process open only while it has a job, so a CLI exits as
 * soon as its work is done.
 */
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { SchemeError, hashSync, verifySync } from './schemes/registry.js';

export type HashJob =
  | { op: 'verify'; plain: Buffer; stored: string; defaultScheme: string; user: string; noScheme: boolean }
  | { op: 'hash'; scheme: string; plain: Buffer; rounds?: number; user: string };

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string; scheme: boolean };

function runJob(job: HashJob): unknown {
  const plain = Buffer.from(job.plain);
  return job.op === 'verify' ? verifySync(plain, job.stored, job.defaultScheme, job.user, job.noScheme) : hashSync(job.scheme, plain, { rounds: job.rounds, user: job.user });
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', (msg: { id: number; job: HashJob }) => {
    try {
      port.postMessage({ id: msg.id, ok: true, value: runJob(msg.job) } satisfies Reply);
    } catch (e) {
      port.postMessage({ id: msg.id, ok: false, error: (e as Error).message, scheme: e instanceof SchemeError } satisfies Reply);
    }
  });
}

interface Slot { worker: Worker; busy: boolean }
const slots: Slot[] = [];
const queue: { job: HashJob; resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
const pending = new Map<number, { slot: Slot; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let nextId = 1;
const POOL_SIZE = Math.max(1, Math.min(4, availableParallelism()));

function spawn(): Slot {
  const worker = new Worker(fileURLToPath(import.meta.url));
  const slot: Slot = { worker, busy: false };
  worker.on('message', (r: Reply) => {
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    slot.busy = false;
    worker.unref(); // idle workers never keep a process alive
    if (r.ok) p.resolve(r.value);
    else p.reject(r.scheme ? new SchemeError(r.error) : new Error(r.error));
    pump();
  });
  worker.on('error', (e) => {
    for (const [id, p] of pending) if (p.slot === slot) { pending.delete(id); p.reject(e); }
    slots.splice(slots.indexOf(slot), 1);
    pump();
  });
  // After the listeners: attaching a 'message' listener refs the port again.
  worker.unref();
  slots.push(slot);
  return slot;
}

function pump(): void {
  while (queue.length > 0) {
    let slot = slots.find((s) => !s.busy);
    if (!slot && slots.length < POOL_SIZE) slot = spawn();
    if (!slot) return;
    const { job, resolve, reject } = queue.shift()!;
    const id = nextId++;
    slot.busy = true;
    slot.worker.ref(); // a job in flight keeps the process alive until it answers
    pending.set(id, { slot, resolve, reject });
    slot.worker.postMessage({ id, job });
  }
}

export function runOnHashWorker(job: HashJob): Promise<unknown> {
  return new Promise((resolve, reject) => {
    queue.push({ job, resolve, reject });
    pump();
  });
}
