/**
 * Randomized multi-session IMAP consistency tester (RFC 3501 §2.3.1, §5.2,
 * §7.4.1; RFC 7162 §3.1, §3.2.10): N sessions of one user on one mailbox run
 * a seeded random mix of SELECT, FETCH, STORE (flags, keywords, no-op and
 * back-and-forth changes), EXPUNGE, APPEND, COPY/MOVE, CHECK/NOOP/IDLE,
 * SEARCH, with and without CONDSTORE/QRESYNC, plus bad input (sequence sets
 * beyond EXISTS, UIDs expunged by others, STOREs racing EXPUNGEs). Each
 * session keeps its model of the mailbox only from what the server sent it
 * and checks every response against it:
 * - EXISTS never shrinks, EXPUNGE names a sequence number the client has and
 *   never comes during FETCH/STORE/SEARCH, VANISHED names UIDs it knows;
 * - UIDs ascend with sequence numbers and are never reused after an expunge;
 * - no keyword in a FETCH before a FLAGS list announced it, and no FLAGS list
 *   drops a keyword still set on a message the client knows;
 * - MODSEQ never decreases for a message nor HIGHESTMODSEQ for the mailbox,
 *   and unsolicited flag updates carry MODSEQ once CONDSTORE is on;
 * - bodies, sections, BINARY and sizes are byte-identical to what was
 *   appended, other items (ENVELOPE, BODYSTRUCTURE …) identical whoever asks.
 * After every round the sessions stop, each sends NOOP or CHECK, and then
 * FETCH 1:* (UID FLAGS [MODSEQ]): its model must already have held exactly
 * that, and all sessions must agree on UIDs, flags, keywords and modseqs.
 * The sessions run concurrently, so the interleaving varies from run to run;
 * the seed fixes each session's choices. A failure reports the seed and the
 * last lines of every session's transcript.
 */
import { connect, type Socket } from 'node:net';
import { seededRandom } from './imap-lockstep.js';
import { ResponseSplitter, compactSet, expandSet, fetchItems, parseValues, type RawResponse, type Value } from './imap-response.js';

export interface ConsistencyOptions {
  port: number;
  user: string;
  password: string;
  /** Server name for reports. */
  name: string;
  seed: number;
  sessions?: number;
  /** Commands in all (every session's random commands together, without the round checks). */
  operations: number;
  /** Random commands per session between two NOOP/CHECK rounds. */
  roundLength?: number;
  /** Transcript lines per session kept for a failure report. */
  transcriptLines?: number;
  /**
   * A MODSEQ a session still holds stale after NOOP (or two sessions disagreeing on one) is an
   * error (default); false counts it in `modseqLag` instead (the bench reports the count).
   */
  strictModseq?: boolean;
}

export interface ConsistencyResult {
  /** Invariant violations, each with its session and what broke. */
  errors: string[];
  /** The report to print on failure: seed, errors, transcripts. */
  report: string;
  /** Tagged status per command kind, e.g. `STORE-expunged: OK 12, NO 3` (what the server answers to races and bad input). */
  answers: Map<string, Map<string, number>>;
  commands: number;
  /** Stale or disagreeing MODSEQs after NOOP rounds, when not strict. */
  modseqLag: string[];
}

/** What one message was appended as, and what its sections must read. */
interface Truth { raw: Buffer; sections: Map<string, Buffer | string> }

/** The user's mailbox as all sessions learned it: bodies by UID, UIDs ever seen, UIDs expunged. */
class World {
  truth = new Map<number, Truth>();
  seenUids = new Set<number>();
  expunged = new Set<number>();
  /** Values first seen for (uid, item) where no truth is known (ENVELOPE, BODYSTRUCTURE …). */
  observed = new Map<string, string>();
  /** Section data that arrived before the APPEND/COPY that made the UID was answered. */
  pending = new Map<number, { section: string; data: Buffer | string; who: string }[]>();
  /** Keywords used so far (never more than Maildir's 26 letters). */
  keywords = ['$k0', '$k1', '$k2', '$k3', '$Forwarded', 'Junk'];
  created = 0;
  /** Placeholder data a FETCH returned: the message must turn out to be expunged (checked after each round). */
  placeholders: { uid: number; item: string; who: string; meta: boolean }[] = [];
  errors: string[] = [];
  firstFailure: string | null = null;
  answers = new Map<string, Map<string, number>>();
  uidValidity = 0;

  fail(msg: string, sessions: Session[]): void {
    this.errors.push(msg);
    if (this.firstFailure === null) this.firstFailure = sessions.map((s) => s.transcriptText()).join('\n');
  }

  answer(kind: string, status: string): void {
    const m = this.answers.get(kind) ?? new Map<string, number>();
    m.set(status, (m.get(status) ?? 0) + 1);
    this.answers.set(kind, m);
  }
}

const SYSTEM = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
const isKeyword = (f: string) => !f.startsWith('\\');
const flagKey = (flags: Set<string>) => [...flags].map((f) => f.toLowerCase()).sort().join(' ');
const show = (v: Value): string => (v === null ? 'NIL' : Buffer.isBuffer(v) ? v.toString('latin1') : Array.isArray(v) ? `(${v.map(show).join(' ')})` : v);

/** Commands whose replies may not include EXPUNGE or VANISHED (RFC 3501 §7.4.1, RFC 7162 §3.2.10). */
const NO_EXPUNGE = new Set(['FETCH', 'STORE', 'SEARCH']);

interface Pending { tag: string; verb: string; resolve: (r: { status: string; text: string }) => void }

class Session {
  private sock!: Socket;
  private splitter = new ResponseSplitter();
  private transcript: string[] = [];
  private pending: Pending | null = null;
  private contWaiter: (() => void) | null = null;
  private n = 0;
  private closed = false;
  /** Sequence → UID (undefined until a FETCH says it). */
  uids: (number | undefined)[] = [];
  flags = new Map<number, Set<string>>();
  modseqs = new Map<number, number>();
  announced = new Set<string>();
  highestModseq = 0;
  condstore = false;
  qresync = false;
  /** CONDSTORE was on when the current command started (its unsolicited FETCHes must carry MODSEQ). */
  private condstoreAtStart = false;
  /** Flags of FETCHes of the current command, by UID (a FETCH of FLAGS after NOOP is compared with the model). */
  fetched = new Map<number, { flags?: Set<string>; modseq?: number }>();
  /** Section data of the current command, checked at its tagged reply (empty data for a message expunged meanwhile is no error then). */
  private sections: { uid: number; item: string; data: Buffer | string; meta?: boolean }[] = [];

  constructor(readonly name: string, private readonly world: World, private readonly all: Session[], private readonly keep: number) {}

  async open(port: number, user: string, password: string): Promise<void> {
    this.sock = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
    this.sock.on('error', () => undefined);
    this.sock.on('close', () => { this.closed = true; this.pending?.resolve({ status: 'CLOSED', text: 'connection closed' }); this.pending = null; this.contWaiter?.(); });
    const greeting = new Promise<void>((r) => { this.contWaiter = r; });
    this.sock.on('data', (d: Buffer) => {
      this.splitter.push(d);
      for (let r = this.splitter.next(); r; r = this.splitter.next()) this.onResponse(r);
    });
    await greeting;
    const q = (s: string) => `"${s.replace(/[\\"]/g, '\\$&')}"`;
    const r = await this.command(`LOGIN ${q(user)} ${q(password)}`, 'LOGIN');
    if (r.status !== 'OK') throw new Error(`${this.name}: LOGIN failed: ${r.text}`);
  }

  close(): void { this.sock?.destroy(); }

  private log(dir: 'C' | 'S', text: string): void {
    this.transcript.push(`${dir}[${this.name}] ${text.length > 240 ? `${text.slice(0, 240)}…` : text}`);
    if (this.transcript.length > this.keep) this.transcript.shift();
  }

  transcriptText(): string { return `--- session ${this.name} (last ${this.transcript.length} lines):\n${this.transcript.join('\n')}`; }

  private fail(msg: string): void { this.world.fail(`${this.name}: ${msg}`, this.all); }

  get count(): number { return this.uids.length; }

  /** Send one command and wait for its tagged reply; `verb` says which EXPUNGE rules apply. */
  command(text: string | Buffer[], verb: string): Promise<{ status: string; text: string }> {
    if (this.closed) return Promise.resolve({ status: 'CLOSED', text: 'connection closed' });
    const tag = `${this.name}${++this.n}`;
    this.condstoreAtStart = this.condstore;
    this.fetched.clear();
    this.sections = [];
    const chunks = typeof text === 'string' ? [Buffer.from(`${tag} ${text}\r\n`, 'latin1')] : [Buffer.from(`${tag} `), ...text, Buffer.from('\r\n')];
    this.log('C', Buffer.concat(chunks).toString('latin1').replace(/\r\n$/, '').replace(/\{(\d+)\+\}\r\n[\s\S]*$/, '{$1+} …'));
    return new Promise((resolve) => {
      this.pending = { tag, verb, resolve };
      this.sock.write(Buffer.concat(chunks));
    });
  }

  /** IDLE until the server says `+`, then DONE. */
  async idle(): Promise<{ status: string; text: string }> {
    const cont = new Promise<void>((r) => { this.contWaiter = r; });
    const done = this.command('IDLE', 'IDLE');
    let idling = false;
    await Promise.race([cont.then(() => { idling = true; }), done]);
    this.contWaiter = null;
    if (idling && !this.closed) { this.log('C', 'DONE'); this.sock.write('DONE\r\n'); }
    return done;
  }

  private onResponse(r: RawResponse): void {
    this.log('S', r.text);
    if (r.text.startsWith('+')) { const w = this.contWaiter; this.contWaiter = null; w?.(); return; }
    if (r.text.startsWith('* ')) {
      if (this.contWaiter && !this.pending) { const w = this.contWaiter; this.contWaiter = null; w(); return; } // greeting
      try { this.untagged(r); } catch (e) { this.fail((e as Error).message); }
      return;
    }
    const sp = r.text.indexOf(' ');
    const tag = r.text.slice(0, sp);
    if (!this.pending || this.pending.tag !== tag) { this.fail(`tagged reply nobody waits for: ${r.text}`); return; }
    const p = this.pending;
    this.pending = null;
    const rest = r.text.slice(sp + 1);
    const status = rest.split(' ')[0];
    this.code(rest.slice(status.length + 1));
    // a message expunged by another session may come back empty, with NO [EXPUNGEISSUED] (RFC 3501 §7.4.1's choice)
    // (Dovecot answers OK with empty data and NIL envelopes too when the file went away before it read it)
    for (const x of this.sections) {
      if (this.world.expunged.has(x.uid) || (status !== 'OK' && !x.data.length)) continue;
      // the file may be gone before any session heard of the expunge: a placeholder is judged after the round's NOOPs
      if (isPlaceholder(x.data) && (x.meta || expectedLength(this.world, x.uid, x.item) !== 0)) { this.world.placeholders.push({ uid: x.uid, item: x.item, who: this.name, meta: !!x.meta }); continue; }
      if (!x.meta) { checkSection(this.world, x.uid, x.item, x.data, this.name, (m) => this.fail(m)); continue; }
      const key = `${x.uid} ${x.item}`;
      const before = this.world.observed.get(key);
      if (before === undefined) this.world.observed.set(key, String(x.data));
      else if (before !== x.data) this.fail(`${x.item} of UID ${x.uid} differs from what was sent before:\n  before: ${before}\n  now:    ${String(x.data)}`);
    }
    this.sections = [];
    p.resolve({ status, text: rest });
  }

  /** Response codes that matter to the model (in tagged and untagged status responses). */
  private code(text: string): void {
    const m = /^\[([^\]]*)\]/.exec(text);
    if (!m) return;
    const [name, ...args] = m[1].split(' ');
    switch (name.toUpperCase()) {
      case 'HIGHESTMODSEQ': {
        const v = Number(args[0]);
        if (v < this.highestModseq) this.fail(`HIGHESTMODSEQ went down from ${this.highestModseq} to ${v}`);
        this.highestModseq = v;
        return;
      }
      case 'PERMANENTFLAGS': {
        const list = m[1].slice(m[1].indexOf('(') + 1, m[1].lastIndexOf(')')).split(' ').filter(Boolean);
        if (!list.includes('\\*')) for (const k of this.announced) if (!list.some((f) => f.toLowerCase() === k)) this.fail(`PERMANENTFLAGS without ${k} (and without \\*)`);
        return;
      }
      case 'UIDVALIDITY': this.world.uidValidity = Number(args[0]); return;
    }
  }

  private untagged(r: RawResponse): void {
    const v = parseValues(r, 2);
    const first = String(v[0] ?? '').toUpperCase();
    if (/^\d+$/.test(first)) {
      const n = Number(first);
      const what = String(v[1]).toUpperCase();
      if (what === 'EXISTS') {
        if (n < this.count) this.fail(`EXISTS went down from ${this.count} to ${n} without EXPUNGE`);
        while (this.uids.length < n) this.uids.push(undefined);
      } else if (what === 'EXPUNGE') {
        if (this.pending && NO_EXPUNGE.has(this.pending.verb)) this.fail(`EXPUNGE during ${this.pending.verb} (RFC 3501 §7.4.1)`);
        if (n < 1 || n > this.count) { this.fail(`EXPUNGE ${n} with ${this.count} messages`); return; }
        const uid = this.uids[n - 1];
        if (uid !== undefined) this.gone(uid);
        this.uids.splice(n - 1, 1);
      } else if (what === 'FETCH') {
        this.fetch(n, v[2]);
      } else if (what !== 'RECENT') this.fail(`unknown response ${r.text}`);
      return;
    }
    switch (first) {
      case 'FLAGS': {
        const list = (v[1] as Value[]).map(String);
        const lower = new Set(list.map((f) => f.toLowerCase()));
        for (const [uid, fl] of this.flags) {
          if (!this.uids.includes(uid)) continue;
          for (const f of fl) if (isKeyword(f) && !lower.has(f.toLowerCase())) this.fail(`FLAGS list ${show(v[1])} drops ${f}, still set on UID ${uid}`);
        }
        this.announced = new Set([...lower].filter(isKeyword));
        return;
      }
      case 'VANISHED': {
        if (Array.isArray(v[1])) return; // (EARLIER): about UIDs a QRESYNC client may not know any more
        if (this.pending && NO_EXPUNGE.has(this.pending.verb)) this.fail(`VANISHED during ${this.pending.verb}`);
        for (const uid of expandSet(String(v[1]))) {
          let i = this.uids.indexOf(uid);
          // a UID not fetched yet: one of the unknown slots between its known neighbours (any of them: all alike)
          if (i < 0) i = this.uids.findIndex((u, j) => u === undefined && !this.uids.slice(0, j).some((k) => k !== undefined && k > uid) && !this.uids.slice(j).some((k) => k !== undefined && k < uid));
          if (i < 0) { this.fail(`VANISHED names UID ${uid} this session does not know`); continue; }
          this.uids.splice(i, 1);
          this.gone(uid);
        }
        return;
      }
      case 'OK': case 'NO': this.code(r.text.slice(2 + first.length + 1)); return;
      case 'BAD': this.fail(`untagged BAD: ${r.text}`); return;
      case 'BYE': if (this.pending?.verb !== 'LOGOUT') this.fail(`BYE: ${r.text}`); return;
      case 'SEARCH': {
        const uidCmd = this.pending?.verb === 'UID SEARCH';
        for (const x of v.slice(1)) {
          const k = Number(x);
          if (!uidCmd && (k < 1 || k > this.count)) this.fail(`SEARCH result ${k} outside 1:${this.count}`);
          if (uidCmd && this.expunged.has(k)) this.fail(`UID SEARCH returned UID ${k}, expunged`);
        }
        return;
      }
      case 'ESEARCH': case 'ENABLED': case 'CAPABILITY': case 'LIST': case 'STATUS': return;
      default: this.fail(`unknown response ${r.text}`);
    }
  }

  /** UIDs this session was told are expunged (none may come back). */
  private expunged = new Set<number>();

  private gone(uid: number): void {
    this.world.expunged.add(uid);
    this.expunged.add(uid);
    this.flags.delete(uid);
    this.modseqs.delete(uid);
  }

  private fetch(seq: number, list: Value): void {
    if (seq < 1 || seq > this.count) { this.fail(`FETCH for ${seq} with ${this.count} messages`); return; }
    const items = fetchItems(list);
    let uid = this.uids[seq - 1];
    if (items.has('UID')) {
      const got = Number(items.get('UID'));
      if (uid !== undefined && uid !== got) { this.fail(`FETCH ${seq} says UID ${got}, the session knows UID ${uid} there`); return; }
      if (uid === undefined) {
        // UIDs ascend with sequence numbers (RFC 3501 §2.3.1.1) and an expunged one never comes back
        const below = this.uids.slice(0, seq - 1).filter((u) => u !== undefined).at(-1);
        const above = this.uids.slice(seq).find((u) => u !== undefined);
        if ((below !== undefined && got <= below) || (above !== undefined && got >= above)) this.fail(`UID ${got} at ${seq} is out of order (${below ?? '-'} before, ${above ?? '-'} after)`);
        // (another session may have expunged it already: this one hears of that later)
        if (this.expunged.has(got)) this.fail(`UID ${got} was expunged before and is back at ${seq}`);
        this.uids[seq - 1] = got;
        this.world.seenUids.add(got);
        uid = got;
      }
    }
    const rec = uid !== undefined ? (this.fetched.get(uid) ?? {}) : {};
    if (items.has('FLAGS')) {
      const fl = new Set((items.get('FLAGS') as Value[]).map(String).filter((f) => f.toLowerCase() !== '\\recent'));
      for (const f of fl) if (isKeyword(f) && !this.announced.has(f.toLowerCase())) this.fail(`FETCH ${seq} carries keyword ${f} before any FLAGS announced it`);
      if (this.condstoreAtStart && !items.has('MODSEQ') && this.pending && ['NOOP', 'CHECK', 'IDLE', 'APPEND', 'EXPUNGE'].includes(this.pending.verb)) {
        this.fail(`unsolicited FETCH ${seq} of FLAGS without MODSEQ with CONDSTORE on (RFC 7162 §3.1.4.1)`);
      }
      if (uid !== undefined) { this.flags.set(uid, fl); rec.flags = fl; }
    }
    if (items.has('MODSEQ')) {
      const ms = Number((items.get('MODSEQ') as Value[])[0]);
      if (uid !== undefined) {
        const old = this.modseqs.get(uid);
        if (old !== undefined && ms < old) this.fail(`MODSEQ of UID ${uid} went down from ${old} to ${ms}`);
        this.modseqs.set(uid, ms);
        rec.modseq = ms;
      }
    }
    if (uid !== undefined) this.fetched.set(uid, rec);
    if (uid === undefined) return;
    for (const [k, val] of items) {
      if (k === 'UID' || k === 'FLAGS' || k === 'MODSEQ') continue;
      if (k.startsWith('BODY[') || k.startsWith('BINARY') || k === 'RFC822.SIZE' || k.startsWith('RFC822')) {
        this.sections.push({ uid, item: k, data: Buffer.isBuffer(val) ? val : val === null ? '' : String(val) });
      } else {
        this.sections.push({ uid, item: k, data: show(val), meta: true });
      }
    }
  }

  /**
   * After a .SILENT STORE the server does not tell this session its own new
   * flags (RFC 3501 §6.4.6): what they are now depends on what others did
   * meanwhile, so the model stops claiming to know them.
   */
  forgetFlags(set: string, uid: boolean): void {
    const targets = set === '1:*' ? this.uids : uid ? expandSet(set) : expandSet(set).map((n) => this.uids[n - 1]);
    for (const u of targets) if (u !== undefined) this.flags.delete(u);
  }

  /** Forget the selected mailbox (SELECT again). */
  reset(): void {
    this.uids = [];
    this.flags.clear();
    this.modseqs.clear();
    this.announced.clear();
    this.highestModseq = 0;
  }
}

/** What Dovecot sends for a message whose file vanished under it: empty data, zero sizes, NIL envelope, epoch dates. */
function isPlaceholder(d: Buffer | string): boolean {
  if (!d.length || d === '0') return true;
  return typeof d === 'string' && (d.startsWith('(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)') || d.startsWith('01-Jan-1970') || d.endsWith(' 0 0)'));
}

/** Length of the data a section must have (0: none, as BODY[2] of a single-part message; -1: unknown). */
function expectedLength(w: World, uid: number, item: string): number {
  const t = w.truth.get(uid);
  if (!t) return -1;
  const want = expectedSection(t, item);
  return want === undefined ? 0 : want === '0' ? 0 : want.length;
}

/** A section's data compared with what was appended (or kept until the APPEND's reply says which UID it got). */
function checkSection(w: World, uid: number, item: string, data: Buffer | string, who: string, fail: (m: string) => void): void {
  const t = w.truth.get(uid);
  if (!t) {
    const list = w.pending.get(uid) ?? [];
    list.push({ section: item, data, who });
    w.pending.set(uid, list);
    return;
  }
  const want = expectedSection(t, item);
  if (want === undefined) return;
  const same = Buffer.isBuffer(want) ? Buffer.isBuffer(data) ? want.equals(data) : want.toString('latin1') === data : String(want) === String(data);
  if (!same) fail(`${item} of UID ${uid} is not what was appended:\n  want: ${JSON.stringify(want.toString().slice(0, 200))}\n  got:  ${JSON.stringify(data.toString().slice(0, 200))}`);
}

function expectedSection(t: Truth, item: string): Buffer | string | undefined {
  const partial = /^(.*)<(\d+)>$/.exec(item);
  if (partial) {
    const whole = t.sections.get(partial[1]);
    return Buffer.isBuffer(whole) ? whole.subarray(Number(partial[2]), Number(partial[2]) + PARTIAL_LEN) : undefined;
  }
  return t.sections.get(item);
}

const PARTIAL_LEN = 20;
/** Where COPY and MOVE put messages. */
const OTHER = 'Archive';

/** Set a UID's truth and check the section data that came before it. */
function learnTruth(w: World, uid: number, t: Truth, sessions: Session[]): void {
  w.truth.set(uid, t);
  w.seenUids.add(uid);
  for (const p of w.pending.get(uid) ?? []) checkSection(w, uid, p.section, p.data, p.who, (m) => w.fail(`${p.who}: ${m}`, sessions));
  w.pending.delete(uid);
}

/** One of three message shapes: its bytes and the section data a server must return. */
function makeMessage(rnd: () => number, id: string): Truth {
  const word = () => ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'][Math.floor(rnd() * 8)];
  const words = (n: number) => Array.from({ length: n }, word).join(' ');
  const head = `From: Ann Example <ann@example.org>\r\nTo: bob@example.org\r\nSubject: ${words(3)} ${id}\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <${id}@consistency.test>\r\nMIME-Version: 1.0\r\n`;
  const sections = new Map<string, Buffer | string>();
  const kind = Math.floor(rnd() * 3);
  let header: string;
  let text: string;
  if (kind === 0) {
    header = `${head}Content-Type: text/plain; charset=us-ascii\r\n\r\n`;
    text = `${words(5)}\r\n${words(8)}\r\n`;
    sections.set('BODY[1]', Buffer.from(text));
    sections.set('BINARY[1]', Buffer.from(text));
    sections.set('BINARY.SIZE[1]', String(text.length));
  } else if (kind === 1) {
    // quoted-printable without trailing white space (RFC 2045 §6.7): a soft break and an encoded '='
    const plain = `${words(4)} 2+2=4 ${words(3)}\r\n${words(2)}\r\n`;
    const qp = plain.replace(/=/g, '=3D').replace(/^(.{20})/, '$1=\r\n');
    header = `${head}Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n`;
    text = qp;
    sections.set('BODY[1]', Buffer.from(text));
    sections.set('BINARY[1]', Buffer.from(plain));
    sections.set('BINARY.SIZE[1]', String(plain.length));
  } else {
    const bin = Buffer.from(Array.from({ length: 40 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)));
    const b64 = bin.toString('base64').replace(/(.{76})/g, '$1\r\n');
    const part1 = `${words(6)}\r\n`;
    const mime2 = 'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n';
    header = `${head}Content-Type: multipart/mixed; boundary="b-${id}"\r\n\r\n`;
    text = `preamble\r\n--b-${id}\r\nContent-Type: text/plain\r\n\r\n${part1}\r\n--b-${id}\r\n${mime2}${b64}\r\n--b-${id}--\r\n`;
    sections.set('BODY[1]', Buffer.from(part1));
    sections.set('BINARY[1]', Buffer.from(part1));
    sections.set('BINARY.SIZE[1]', String(part1.length));
    sections.set('BODY[2]', Buffer.from(b64));
    sections.set('BODY[2.MIME]', Buffer.from(mime2));
    sections.set('BINARY[2]', bin);
    sections.set('BINARY.SIZE[2]', String(bin.length));
  }
  const raw = Buffer.from(header + text);
  sections.set('BODY[]', raw);
  sections.set('RFC822', raw);
  sections.set('BODY[HEADER]', Buffer.from(header));
  sections.set('RFC822.HEADER', Buffer.from(header));
  sections.set('BODY[TEXT]', Buffer.from(text));
  sections.set('RFC822.TEXT', Buffer.from(text));
  sections.set('RFC822.SIZE', String(raw.length));
  return { raw, sections };
}

/** Run the tester against one server. */
export async function runConsistency(o: ConsistencyOptions): Promise<ConsistencyResult> {
  const n = o.sessions ?? 10;
  const roundLength = o.roundLength ?? 12;
  const world = new World();
  const sessions: Session[] = [];
  const seedRnd = seededRandom(o.seed);
  const rnds = Array.from({ length: n }, () => seededRandom(Math.floor(seedRnd() * 2 ** 32)));
  for (let i = 0; i < n; i++) sessions.push(new Session(String.fromCharCode(65 + (i % 26)) + (i >= 26 ? String(i) : ''), world, sessions, o.transcriptLines ?? 60));
  let commands = 0;
  let appended = 0;
  const cmd = async (s: Session, kind: string, text: string | Buffer[], verb: string) => {
    commands++;
    const r = await s.command(text, verb);
    world.answer(kind, r.status === 'OK' ? 'OK' : `${r.status}${/^\w+ \[([A-Z-]+)/.exec(r.text)?.[1] ? ` [${/^\w+ \[([A-Z-]+)/.exec(r.text)![1]}]` : ''}`);
    return r;
  };
  const mustOk = (s: Session, what: string, r: { status: string; text: string }) => { if (r.status !== 'OK') world.fail(`${s.name}: ${what} answered ${r.text}`, sessions); };
  /** NO is a legal answer to a command that raced an expunge; BAD never is, for a valid command. */
  const okOrNo = (s: Session, what: string, r: { status: string; text: string }) => { if (r.status !== 'OK' && r.status !== 'NO') world.fail(`${s.name}: ${what} answered ${r.text}`, sessions); };

  const select = async (s: Session, rnd: () => number) => {
    const mode = rnd();
    const old = s.highestModseq;
    s.reset();
    let r;
    if (s.qresync && mode < 0.5 && world.uidValidity && old) r = await cmd(s, 'SELECT', `SELECT INBOX (QRESYNC (${world.uidValidity} ${old}))`, 'SELECT');
    else if (mode < 0.7) { r = await cmd(s, 'SELECT', 'SELECT INBOX (CONDSTORE)', 'SELECT'); s.condstore = true; }
    else r = await cmd(s, 'SELECT', 'SELECT INBOX', 'SELECT');
    mustOk(s, 'SELECT', r);
    // a real client learns the UIDs (and flags) of what EXISTS announced
    if (s.count) mustOk(s, 'FETCH after SELECT', await cmd(s, 'FETCH', `FETCH 1:* (UID FLAGS${s.condstore ? ' MODSEQ' : ''})`, 'FETCH'));
  };

  const pickSet = (s: Session, rnd: () => number, uid: boolean): string | null => {
    if (!s.count) return null;
    const known = s.uids.map((u, i) => ({ u, i: i + 1 })).filter((x) => x.u !== undefined);
    const r = rnd();
    if (r < 0.1) return uid ? '1:*' : '1:*';
    const k = 1 + Math.floor(rnd() * Math.min(3, s.count));
    const picks: number[] = [];
    for (let j = 0; j < k; j++) {
      if (uid) { if (known.length) picks.push(known[Math.floor(rnd() * known.length)].u!); }
      else picks.push(1 + Math.floor(rnd() * s.count));
    }
    return picks.length ? compactSet(picks) : null;
  };
  const pickFlags = (rnd: () => number): string[] => {
    const out = new Set<string>();
    const k = 1 + Math.floor(rnd() * 2);
    for (let j = 0; j < k; j++) {
      const r = rnd();
      if (r < 0.45) out.add(SYSTEM.filter((f) => f !== '\\Deleted')[Math.floor(rnd() * 4)]);
      else if (r < 0.97 || world.keywords.length >= 20) out.add(world.keywords[Math.floor(rnd() * world.keywords.length)]);
      else { const kw = `new${++world.created}`; world.keywords.push(kw); out.add(kw); }
    }
    return [...out];
  };

  const append = async (s: Session, rnd: () => number) => {
    const t = makeMessage(rnd, `${o.seed}.${s.name}.${++appended}`);
    const fl = rnd() < 0.4 ? pickFlags(rnd) : [];
    const r = await cmd(s, 'APPEND', [Buffer.from(`APPEND INBOX (${fl.join(' ')}) {${t.raw.length}+}\r\n`), t.raw], 'APPEND');
    mustOk(s, 'APPEND', r);
    const m = /\[APPENDUID \d+ (\d+)\]/.exec(r.text);
    if (m) {
      const uid = Number(m[1]);
      if (world.truth.has(uid)) world.fail(`${s.name}: APPENDUID ${uid} was used before`, sessions);
      learnTruth(world, uid, t, sessions);
    } else if (r.status === 'OK') world.fail(`${s.name}: APPEND without APPENDUID: ${r.text}`, sessions);
  };

  const FETCH_BODY = ['BODY.PEEK[]', 'BODY.PEEK[HEADER]', 'BODY.PEEK[TEXT]', 'BODY.PEEK[1]', 'BODY.PEEK[2]', 'BODY.PEEK[2.MIME]', 'BINARY.PEEK[1]', 'BINARY.PEEK[2]', 'BINARY.SIZE[1]', 'RFC822.SIZE', `BODY.PEEK[]<${3}.${PARTIAL_LEN}>`, 'RFC822.HEADER', 'BODY[TEXT]', 'BINARY[1]'];
  const FETCH_META = ['INTERNALDATE', 'ENVELOPE', 'BODYSTRUCTURE', 'BODY', 'RFC822.SIZE'];

  type Op = [number, (s: Session, rnd: () => number) => Promise<void>];
  const ops: Op[] = [
    [12, async (s, rnd) => { // FETCH flags
      const uid = rnd() < 0.5;
      const set = pickSet(s, rnd, uid);
      if (!set) return;
      const ms = s.condstore && rnd() < 0.5 ? ' MODSEQ' : '';
      okOrNo(s, 'FETCH', await cmd(s, 'FETCH', `${uid ? 'UID ' : ''}FETCH ${set} (UID FLAGS${ms})`, uid ? 'UID FETCH' : 'FETCH'));
    }],
    [6, async (s, rnd) => { // FETCH metadata
      const uid = rnd() < 0.5;
      const set = pickSet(s, rnd, uid);
      if (!set) return;
      const items = FETCH_META.filter(() => rnd() < 0.5);
      okOrNo(s, 'FETCH', await cmd(s, 'FETCH', `${uid ? 'UID ' : ''}FETCH ${set} (UID ${items.join(' ')})`, uid ? 'UID FETCH' : 'FETCH'));
    }],
    [10, async (s, rnd) => { // FETCH bodies, sections, BINARY
      const uid = rnd() < 0.5;
      const set = pickSet(s, rnd, uid);
      if (!set) return;
      const items = [FETCH_BODY[Math.floor(rnd() * FETCH_BODY.length)], ...(rnd() < 0.3 ? [FETCH_BODY[Math.floor(rnd() * FETCH_BODY.length)]] : [])];
      okOrNo(s, 'FETCH', await cmd(s, 'FETCH', `${uid ? 'UID ' : ''}FETCH ${set} (UID ${[...new Set(items)].join(' ')})`, uid ? 'UID FETCH' : 'FETCH'));
    }],
    [4, async (s, rnd) => { // FETCH CHANGEDSINCE / MODSEQ (enables CONDSTORE)
      if (!s.count) return;
      s.condstore = true;
      const since = rnd() < 0.5 && s.highestModseq ? Math.max(1, s.highestModseq - 3) : 1;
      okOrNo(s, 'FETCH', await cmd(s, 'FETCH', `UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE ${since})`, 'UID FETCH'));
    }],
    [20, async (s, rnd) => { // STORE
      const uid = rnd() < 0.5;
      const set = pickSet(s, rnd, uid);
      if (!set) return;
      const op = ['+', '-', ''][Math.floor(rnd() * 3)];
      const silent = rnd() < 0.2 ? '.SILENT' : '';
      const unchanged = s.condstore && rnd() < 0.2 ? ` (UNCHANGEDSINCE ${s.highestModseq || 1})` : '';
      const r = await cmd(s, 'STORE', `${uid ? 'UID ' : ''}STORE ${set}${unchanged} ${op}FLAGS${silent} (${pickFlags(rnd).join(' ')})`, uid ? 'UID STORE' : 'STORE');
      okOrNo(s, 'STORE', r);
      if (silent) s.forgetFlags(set, uid);
    }],
    [7, async (s, rnd) => { // a flag changed and changed back
      const set = pickSet(s, rnd, true);
      if (!set) return;
      const fl = pickFlags(rnd).join(' ');
      okOrNo(s, 'STORE', await cmd(s, 'STORE', `UID STORE ${set} +FLAGS (${fl})`, 'UID STORE'));
      const silent = rnd() < 0.5;
      okOrNo(s, 'STORE', await cmd(s, 'STORE', `UID STORE ${set} -FLAGS${silent ? '.SILENT' : ''} (${fl})`, 'UID STORE'));
      if (silent) s.forgetFlags(set, true);
    }],
    [4, async (s, rnd) => { // no-op STORE: flags the message already has
      const known = s.uids.filter((u): u is number => u !== undefined && (s.flags.get(u)?.size ?? 0) > 0);
      if (!known.length) return;
      const u = known[Math.floor(rnd() * known.length)];
      okOrNo(s, 'STORE-noop', await cmd(s, 'STORE-noop', `UID STORE ${u} +FLAGS (${[...s.flags.get(u)!].join(' ')})`, 'UID STORE'));
    }],
    [5, async (s, rnd) => { // EXPUNGE
      if (s.count < 4) return;
      const set = pickSet(s, rnd, true);
      if (!set || set === '1:*') return;
      okOrNo(s, 'STORE', await cmd(s, 'STORE', `UID STORE ${set} +FLAGS.SILENT (\\Deleted)`, 'UID STORE'));
      s.forgetFlags(set, true);
      if (rnd() < 0.5) mustOk(s, 'EXPUNGE', await cmd(s, 'EXPUNGE', 'EXPUNGE', 'EXPUNGE'));
      else mustOk(s, 'UID EXPUNGE', await cmd(s, 'EXPUNGE', `UID EXPUNGE ${set}`, 'UID EXPUNGE'));
    }],
    [8, async (s, rnd) => { if (s.count < 60) await append(s, rnd); }],
    // COPY and MOVE go to another mailbox: Dovecot 2.3.19 itself breaks on a Maildir copying into the
    // mailbox it copies from under this load (duplicate uidlist entries, "Expunged message reappeared",
    // an imap process killed with signal 11), so that cannot validate the checker
    [3, async (s, rnd) => { // COPY
      const uid = rnd() < 0.5;
      const set = pickSet(s, rnd, uid);
      if (!set || set === '1:*') return;
      const r = await cmd(s, 'COPY', `${uid ? 'UID ' : ''}COPY ${set} ${OTHER}`, uid ? 'UID COPY' : 'COPY');
      okOrNo(s, 'COPY', r);
      if (r.status === 'OK' && !/\[COPYUID \d+ \S+ \S+\]/.test(r.text) && set) world.fail(`${s.name}: COPY without COPYUID: ${r.text}`, sessions);
    }],
    [3, async (s, rnd) => { // MOVE: the messages leave with EXPUNGE/VANISHED in the middle of the reply
      const uid = rnd() < 0.5;
      const set = pickSet(s, rnd, uid);
      if (!set || set === '1:*' || s.count < 4) return;
      okOrNo(s, 'MOVE', await cmd(s, 'MOVE', `${uid ? 'UID ' : ''}MOVE ${set} ${OTHER}`, uid ? 'UID MOVE' : 'MOVE'));
    }],
    [5, async (s) => { mustOk(s, 'NOOP', await cmd(s, 'NOOP', 'NOOP', 'NOOP')); }],
    [3, async (s) => { mustOk(s, 'CHECK', await cmd(s, 'CHECK', 'CHECK', 'CHECK')); }],
    [3, async (s) => { commands++; const r = await s.idle(); world.answer('IDLE', r.status); mustOk(s, 'IDLE', r); }],
    [3, async (s, rnd) => { // SEARCH
      const kw = world.keywords[Math.floor(rnd() * world.keywords.length)];
      const q = [`KEYWORD ${kw}`, 'ALL', 'UNSEEN', 'FLAGGED', `UNKEYWORD ${kw}`][Math.floor(rnd() * 5)];
      const uid = rnd() < 0.5;
      mustOk(s, 'SEARCH', await cmd(s, 'SEARCH', `${uid ? 'UID ' : ''}SEARCH ${q}`, uid ? 'UID SEARCH' : 'SEARCH'));
    }],
    [2, async (s, rnd) => { await select(s, rnd); }],
    [3, async (s, rnd) => { // bad input: sequence numbers beyond EXISTS, UIDs expunged by others
      const r = rnd();
      if (r < 0.35) { const k = await cmd(s, 'FETCH-beyond', `FETCH ${s.count + 1 + Math.floor(rnd() * 3)} (FLAGS)`, 'FETCH'); if (k.status === 'CLOSED') world.fail(`${s.name}: connection lost`, sessions); return; }
      if (r < 0.5) { const k = await cmd(s, 'STORE-beyond', `STORE ${s.count + 1}:${s.count + 5} +FLAGS (\\Seen)`, 'STORE'); if (k.status === 'CLOSED') world.fail(`${s.name}: connection lost`, sessions); return; }
      const gone = [...world.expunged];
      if (!gone.length) return;
      const u = gone[Math.floor(rnd() * gone.length)];
      const verb = ['FETCH', 'STORE', 'COPY'][Math.floor(rnd() * 3)];
      const text = verb === 'FETCH' ? `UID FETCH ${u} (FLAGS BODY.PEEK[])` : verb === 'STORE' ? `UID STORE ${u} +FLAGS (\\Flagged)` : `UID COPY ${u} ${OTHER}`;
      const k = await cmd(s, `UID ${verb}-expunged`, text, `UID ${verb}`);
      if (k.status !== 'OK' && k.status !== 'NO') world.fail(`${s.name}: ${text} answered ${k.text}`, sessions);
    }],
  ];
  const total = ops.reduce((a, [w]) => a + w, 0);
  const pick = (rnd: () => number) => { let x = rnd() * total; for (const op of ops) { x -= op[0]; if (x < 0) return op[1]; } return ops[0][1]; };

  /** A MODSEQ a session was not told after NOOP: an error with `strictModseq`, else counted (see ConsistencyOptions). */
  const modseqLag: string[] = [];
  const lag = (msg: string, ss: Session[]) => { if (o.strictModseq ?? true) world.fail(msg, ss); else modseqLag.push(msg); };

  /** Every session NOOP/CHECK in turn, then FETCH 1:*: the model must already have been right, and all agree. */
  const verifyRound = async (round: number, rnd: () => number) => {
    // twice round: a session's sync may itself change the mailbox (Dovecot renumbers a Maildir file it finds again)
    for (let pass = 0; pass < 2; pass++) for (const s of sessions) mustOk(s, 'NOOP', await cmd(s, 'round', rnd() < 0.5 ? 'CHECK' : 'NOOP', 'NOOP'));
    for (const p of world.placeholders) {
      if (world.expunged.has(p.uid)) continue;
      // a section that came back empty before the APPEND's reply said what UID p.uid holds (a
      // session of another process saw it first): empty is right when that message has no such
      // section (BODY[2] of a single part)
      if (!p.meta && expectedLength(world, p.uid, p.item) === 0) continue;
      world.fail(`${p.who}: ${p.item} of UID ${p.uid} came back empty, but the message was not expunged`, sessions);
    }
    world.placeholders = [];
    const views: { s: Session; uids: number[]; flags: Map<number, string>; modseqs: Map<number, number> }[] = [];
    for (const s of sessions) {
      const before = { uids: [...s.uids], flags: new Map([...s.flags].map(([u, f]) => [u, flagKey(f)])), modseqs: new Map(s.modseqs) };
      if (s.count) mustOk(s, 'FETCH', await cmd(s, 'round', `FETCH 1:* (UID FLAGS${s.condstore ? ' MODSEQ' : ''})`, 'FETCH'));
      // nothing changed since the NOOP: what FETCH says is what the session must have been told already
      for (const [uid, f] of s.fetched) {
        if (before.uids.includes(uid) && f.flags && before.flags.has(uid) && before.flags.get(uid) !== flagKey(f.flags)) {
          world.fail(`${s.name} (round ${round}): after NOOP the session held UID ${uid} with flags (${before.flags.get(uid)}), FETCH says (${flagKey(f.flags)}): an update was not sent`, sessions);
        }
        if (f.modseq !== undefined && before.modseqs.has(uid) && before.modseqs.get(uid) !== f.modseq) {
          lag(`${s.name} (round ${round}): after NOOP the session held MODSEQ ${before.modseqs.get(uid)} for UID ${uid}, FETCH says ${f.modseq}: an update was not sent`, sessions);
        }
      }
      views.push({ s, uids: s.uids.filter((u): u is number => u !== undefined), flags: new Map([...s.flags].map(([u, f]) => [u, flagKey(f)])), modseqs: new Map(s.modseqs) });
    }
    const ref = views[0];
    for (const v of views.slice(1)) {
      if (v.uids.join(',') !== ref.uids.join(',')) { world.fail(`round ${round}: ${v.s.name} has UIDs ${compactSet(v.uids)}, ${ref.s.name} ${compactSet(ref.uids)}`, sessions); continue; }
      for (const u of v.uids) {
        if (v.flags.get(u) !== ref.flags.get(u)) world.fail(`round ${round}: UID ${u} has flags (${v.flags.get(u)}) in ${v.s.name}, (${ref.flags.get(u)}) in ${ref.s.name}`, sessions);
        const a = v.modseqs.get(u);
        const b = views.find((x) => x.modseqs.has(u))?.modseqs.get(u);
        if (a !== undefined && b !== undefined && a !== b) lag(`round ${round}: UID ${u} has MODSEQ ${a} in ${v.s.name}, ${b} elsewhere`, sessions);
      }
    }
  };

  try {
    await sessions[0].open(o.port, o.user, o.password);
    await Promise.all(sessions.slice(1).map((s) => s.open(o.port, o.user, o.password)));
    const setup = sessions[0];
    const rnd0 = seededRandom(o.seed ^ 0x5eed);
    await cmd(setup, 'CREATE', `CREATE ${OTHER}`, 'CREATE');
    for (let i = 0; i < 6; i++) await append(setup, rnd0);
    // some sessions use CONDSTORE or QRESYNC from the start, others later (a FETCH MODSEQ) or never
    for (const [i, s] of sessions.entries()) {
      const mode = i % 4;
      if (mode === 1) { mustOk(s, 'ENABLE', await cmd(s, 'ENABLE', 'ENABLE CONDSTORE', 'ENABLE')); s.condstore = true; }
      if (mode === 2) { mustOk(s, 'ENABLE', await cmd(s, 'ENABLE', 'ENABLE QRESYNC', 'ENABLE')); s.condstore = true; s.qresync = true; }
      await select(s, rnds[i]);
    }
    const perRound = roundLength * n;
    for (let round = 1; commands < o.operations && world.errors.length < 20; round++) {
      const budget = Math.min(perRound, o.operations - commands);
      let left = budget;
      await Promise.all(sessions.map(async (s, i) => {
        while (left > 0 && world.errors.length < 20) {
          left--;
          await pick(rnds[i])(s, rnds[i]);
        }
      }));
      await verifyRound(round, rnd0);
    }
  } catch (e) {
    world.fail(`tester stopped: ${(e as Error).stack}`, sessions);
  } finally {
    for (const s of sessions) s.close();
  }
  const answers = [...world.answers].map(([k, m]) => `${k}: ${[...m].map(([st, c]) => `${st} ${c}`).join(', ')}`).join('\n  ');
  const report = world.errors.length
    ? `${o.name}: ${world.errors.length} consistency error(s) with seed ${o.seed} (CONSISTENCY_SEED=${o.seed} repeats the choices):\n${world.errors.slice(0, 20).join('\n')}\n` +
      `answers:\n  ${answers}\ntranscripts at the first error:\n${world.firstFailure}`
    : `${o.name}: ${commands} commands, no inconsistency (seed ${o.seed})${modseqLag.length ? `, ${modseqLag.length} stale MODSEQ(s) after NOOP, e.g. ${modseqLag[0]}` : ''}\n  ${answers}`;
  return { errors: world.errors, report, answers: world.answers, commands, modseqLag };
}
