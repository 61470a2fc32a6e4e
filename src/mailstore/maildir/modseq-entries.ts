/**
 * The per-message records of a folder's MODSEQ state (modseq.ts): for each
 * UID its MODSEQ, the flag signature it was recorded with (the file name's
 * info after ":2,") and the state's tick when recorded. Held as a UID → slot
 * map over typed arrays, signatures interned (a mailbox has few distinct
 * ones): a 100k-message folder must not cost an object and a string per
 * message. Map-like API (get/set/has/delete/iteration in insertion order),
 * so the state's file keeps its order.
 */

export interface ModseqEntry { sig: string; modseq: number; at: number }

export class ModseqEntries {
  private slots = new Map<number, number>();
  private modseqs = new Float64Array(16);
  private ats = new Float64Array(16);
  private sigIds = new Uint32Array(16);
  private free: number[] = [];
  private used = 0;
  private sigs: string[] = [''];
  private sigIndex = new Map<string, number>([['', 0]]);

  get size(): number { return this.slots.size; }

  has(uid: number): boolean { return this.slots.has(uid); }

  /** The record of `uid` as a new object (a copy: changing it changes nothing here). */
  get(uid: number): ModseqEntry | undefined {
    const s = this.slots.get(uid);
    return s === undefined ? undefined : { sig: this.sigs[this.sigIds[s]], modseq: this.modseqs[s], at: this.ats[s] };
  }

  set(uid: number, e: ModseqEntry): this {
    let s = this.slots.get(uid);
    if (s === undefined) {
      s = this.free.pop() ?? this.used++;
      if (s >= this.modseqs.length) this.grow();
      this.slots.set(uid, s);
    }
    let id = this.sigIndex.get(e.sig);
    if (id === undefined) {
      id = this.sigs.length;
      // a copy, not a slice of the text it was parsed from (which would stay alive with it)
      const sig = Buffer.from(e.sig, 'utf8').toString('utf8');
      this.sigs.push(sig);
      this.sigIndex.set(sig, id);
    }
    this.modseqs[s] = e.modseq;
    this.ats[s] = e.at;
    this.sigIds[s] = id;
    return this;
  }

  delete(uid: number): boolean {
    const s = this.slots.get(uid);
    if (s === undefined) return false;
    this.slots.delete(uid);
    this.free.push(s);
    return true;
  }

  clear(): void {
    this.slots.clear();
    this.free = [];
    this.used = 0;
  }

  *[Symbol.iterator](): IterableIterator<[number, ModseqEntry]> {
    for (const [uid, s] of this.slots) yield [uid, { sig: this.sigs[this.sigIds[s]], modseq: this.modseqs[s], at: this.ats[s] }];
  }

  private grow(): void {
    const n = this.modseqs.length * 2;
    const m = new Float64Array(n); m.set(this.modseqs); this.modseqs = m;
    const a = new Float64Array(n); a.set(this.ats); this.ats = a;
    const g = new Uint32Array(n); g.set(this.sigIds); this.sigIds = g;
  }
}
