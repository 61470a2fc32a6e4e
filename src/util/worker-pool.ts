/**
 * A small pool of worker threads for CPU-heavy jobs that must not stall the
 * event loop (password hashing, PBKDF2, P-521 ECDH, key unwrapping). Jobs
 * queue when every worker is busy; a failing job rejects with the worker's
 * message (errors flagged `typed` are rebuilt by the caller's factory). A
 * worker holds the process open only while it has a job, so a CLI exits as
 * soon as its work is done. The worker side calls `serveJobs(handler)`.
 */
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { availableParallelism } from 'node:os';

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string; typed: boolean };

/** Worker side: answer every job with handler(job); errors for which `isTyped` is true keep their class on the main side. */
export function serveJobs<J>(handler: (job: J) => unknown, isTyped: (e: unknown) => boolean = () => false): void {
  if (isMainThread || !parentPort) return;
  const port = parentPort;
  port.on('message', async (msg: { id: number; job: J }) => {
    try {
      port.postMessage({ id: msg.id, ok: true, value: await handler(msg.job) } satisfies Reply);
    } catch (e) {
      port.postMessage({ id: msg.id, ok: false, error: (e as Error).message, typed: isTyped(e) } satisfies Reply);
    }
  });
}

interface Slot { worker: Worker; busy: boolean }

export class WorkerPool<J> {
  private slots: Slot[] = [];
  private queue: { job: J; resolve: (v: unknown) => void; reject: (e: Error) => void; transfer?: ArrayBuffer[] }[] = [];
  private pending = new Map<number, { slot: Slot; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  /**
   * `script`: the worker module's file path; `typedError` rebuilds errors the
   * worker flagged as typed (e.g. SchemeError), others become plain Errors.
   */
  constructor(
    private readonly script: string,
    private readonly typedError: (msg: string) => Error = (m) => new Error(m),
    private readonly size = Math.max(1, Math.min(4, availableParallelism())),
  ) {}

  run<T = unknown>(job: J): Promise<T> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
  }

  private spawn(): Slot {
    const worker = new Worker(this.script);
    const slot: Slot = { worker, busy: false };
    worker.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      slot.busy = false;
      worker.unref(); // idle workers never keep a process alive
      if (r.ok) p.resolve(r.value);
      else p.reject(r.typed ? this.typedError(r.error) : new Error(r.error));
      this.pump();
    });
    worker.on('error', (e) => {
      for (const [id, p] of this.pending) if (p.slot === slot) { this.pending.delete(id); p.reject(e); }
      this.slots.splice(this.slots.indexOf(slot), 1);
      this.pump();
    });
    // After the listeners: attaching a 'message' listener refs the port again.
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => !s.busy);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const { job, resolve, reject } = this.queue.shift()!;
      const id = this.nextId++;
      slot.busy = true;
      slot.worker.ref(); // a job in flight keeps the process alive until it answers
      this.pending.set(id, { slot, resolve, reject });
      slot.worker.postMessage({ id, job });
    }
  }
}
