/**
 * Differential IMAP harness: runs one scripted IMAP session against the real
 * Dovecot 2.3 and against Sealmail, each on its own copy of the same Maildir
 * (written here from a mail corpus, with fixed UIDVALIDITY, UIDs and mtimes,
 * so nothing needs normalising that could hide a real difference), and
 * compares the transcripts line by line.
 *
 * Script format (`test/fixtures/imap-diff/scripts/*.imap`), one item a line:
 *   # comment                      ignored
 *   @differs <reason>              a deliberate difference from Dovecot (dovecot-compat.md):
 *   @expect LINE                   Sealmail must send this transcript line, and only lines so
 *                                  listed may differ from Dovecot's (at least one must: a
 *                                  difference that went away is reported too)
 *   @keywords $Work Junk           dovecot-keywords of every folder (letters a, b, …)
 *   @load FOLDER FILE [FLAGS]      a corpus file into FOLDER (Maildir++), flags in Maildir
 *                                  letters (S F R T D, a… for keywords); UIDs in load order
 *   @modseq-ranks                  modification sequences are compared by rank (each value
 *                                  replaced by its place among the transcript's distinct
 *                                  values, `<m1>` lowest) instead of hidden, ESEARCH's too
 *   @conn NAME                     following commands go to connection NAME (opened and
 *                                  logged in on first use); the default is A
 *   @sleep MS                      wait, then record what every connection received
 *   @send TEXT                     a continuation line (DONE, SASL data): waits for the
 *                                  pending tag or the next `+`
 *   TAG COMMAND ...                sent with CRLF; waits for `TAG OK|NO|BAD`, or for `+`
 *                                  after IDLE/AUTHENTICATE
 * In a command, `{{file:NAME}}` becomes a LITERAL+ with the corpus file in
 * CRLF form (what clients send), `{{rawfile:NAME}}` the bytes as stored,
 * `{{sync:NAME}}` a synchronising literal (waits for `+` before the data),
 * `{{text:...}}` a LITERAL+ of the text itself (with \r \n \xNN escapes),
 * `{{bin:...}}` that text as a synchronising literal8 `~{n}` (RFC 3516),
 * `{{binplus:...}}` as `~{n+}` (which Dovecot refuses).
 *
 * What is normalised (everything else must match byte for byte): Dovecot's
 * timing suffix `(0.001 + 0.000 secs)`, capability lists (Sealmail announces
 * only what it implements; the test reports the difference), the `* ID`
 * server data, UIDVALIDITY values of folders created during the script
 * (time-based in both servers), which are renumbered in order of appearance,
 * modification sequence values (Sealmail keeps its own counter, see
 * dovecot-compat.md; whether and where they appear must still match), and
 * LIST's \Marked/\UnMarked, which Dovecot sends depending on how long ago
 * it synced the mailbox (withoutListMarks).
 */
import { chownSync, mkdirSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fixturesDir } from './paths.js';
import { mailIds } from './dovecot.js';
import { withoutListMarks } from './imap-lockstep.js';
import { foldTiming } from './dovecot-timing.js';

export const diffDir = join(fixturesDir, 'imap-diff');
export const corpusDir = join(diffDir, 'corpus');
export const scriptsDir = join(diffDir, 'scripts');

export interface LoadSpec { folder: string; file: string; flags: string }
export type Step =
  | { kind: 'cmd'; conn: string; line: number; text: string; chunks: Buffer[]; waitCont: boolean; tag: string }
  | { kind: 'send'; conn: string; line: number; text: string }
  | { kind: 'sleep'; ms: number; line: number };

export interface ImapScript {
  name: string;
  /** Why Sealmail deliberately answers otherwise; `expect` holds its lines. */
  differs?: string;
  /** Compare modseq values by rank rather than hide them (`@modseq-ranks`). */
  modseqRanks?: boolean;
  expect: string[];
  keywords: string[];
  loads: LoadSpec[];
  steps: Step[];
}

function unescape(s: string): string {
  return s.replace(/\\(r|n|t|\\|x[0-9a-fA-F]{2})/g, (_, e: string) =>
    e === 'r' ? '\r' : e === 'n' ? '\n' : e === 't' ? '\t' : e === '\\' ? '\\' : String.fromCharCode(parseInt(e.slice(1), 16)));
}

/** Corpus file as a client would send it: every line ending CRLF. */
export function crlf(b: Buffer): Buffer {
  return Buffer.from(b.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
}

export function corpusFile(name: string): Buffer {
  return readFileSync(join(corpusDir, name));
}

/** Parse a script; errors name the file and line. */
export function parseScript(name: string, text: string): ImapScript {
  const s: ImapScript = { name, keywords: [], loads: [], steps: [], expect: [] };
  let conn = 'A';
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const l = raw.replace(/\r$/, '');
    if (!l.trim() || l.startsWith('#')) return;
    const where = `${name}:${line}`;
    if (l.startsWith('@')) {
      const [dir, ...rest] = l.slice(1).split(' ');
      const arg = rest.join(' ');
      switch (dir) {
        case 'differs': s.differs = arg || 'not given'; return;
        case 'modseq-ranks': s.modseqRanks = true; return;
        case 'expect': s.expect.push(arg); return;
        case 'keywords': s.keywords = rest.filter(Boolean); return;
        case 'load': {
          if (rest.length < 2) throw new Error(`${where}: @load FOLDER FILE [FLAGS]`);
          s.loads.push({ folder: rest[0], file: rest[1], flags: rest[2] ?? '' });
          return;
        }
        case 'conn': conn = arg || 'A'; return;
        case 'sleep': s.steps.push({ kind: 'sleep', ms: Number(arg), line }); return;
        case 'send': s.steps.push({ kind: 'send', conn, line, text: unescape(arg) }); return;
        default: throw new Error(`${where}: unknown directive @${dir}`);
      }
    }
    const tag = l.split(' ')[0];
    // only a synchronising literal splits the command into chunks
    const merged: Buffer[] = [];
    let acc: Buffer[] = [];
    for (const p of l.split(/(\{\{(?:file|rawfile|sync|text|bin|binplus):[^}]*\}\})/)) {
      const m = /^\{\{(file|rawfile|sync|text|bin|binplus):([^}]*)\}\}$/.exec(p);
      if (!m) { acc.push(Buffer.from(p, 'latin1')); continue; }
      const data = m[1] === 'text' || m[1] === 'bin' || m[1] === 'binplus' ? Buffer.from(unescape(m[2]), 'latin1')
        : m[1] === 'rawfile' ? corpusFile(m[2]) : crlf(corpusFile(m[2]));
      if (m[1] === 'sync' || m[1] === 'bin') {
        acc.push(Buffer.from(`${m[1] === 'bin' ? '~' : ''}{${data.length}}\r\n`));
        merged.push(Buffer.concat(acc));
        acc = [data];
      } else {
        acc.push(Buffer.from(`${m[1] === 'binplus' ? '~' : ''}{${data.length}+}\r\n`), data);
      }
    }
    acc.push(Buffer.from('\r\n'));
    merged.push(Buffer.concat(acc));
    const verb = (l.split(' ')[1] ?? '').toUpperCase();
    s.steps.push({ kind: 'cmd', conn, line, text: l, chunks: merged, waitCont: verb === 'IDLE' || (verb === 'AUTHENTICATE' && l.split(' ').length === 3), tag });
  });
  return s;
}

export function loadScripts(filter?: (name: string) => boolean): ImapScript[] {
  return readdirSync(scriptsDir).filter((f) => f.endsWith('.imap')).sort()
    .filter((f) => !filter || filter(f))
    .map((f) => parseScript(f, readFileSync(join(scriptsDir, f), 'utf8')));
}

const BASE_MTIME = Date.UTC(2026, 0, 5, 10, 0, 0) / 1000;
export const FIXED_UIDVALIDITY = 1767000000;

/**
 * Write the script's Maildir for one user: Maildir++ folders, files in cur/
 * with S= and W= sizes, dovecot-uidlist v3 with a fixed UIDVALIDITY per
 * folder, dovecot-keywords, fixed mtimes (INTERNALDATE) — the same bytes for
 * both servers. Owned by the mail uid when we run as root.
 */
export function writeMaildir(home: string, script: ImapScript): void {
  const { uid, gid } = mailIds();
  const root = join(home, 'Maildir');
  const made: string[] = [];
  const mk = (d: string) => { mkdirSync(d, { recursive: true }); made.push(d); };
  mk(home);
  mk(root);
  const folders = new Map<string, LoadSpec[]>([['INBOX', []]]);
  for (const l of script.loads) {
    if (!folders.has(l.folder)) folders.set(l.folder, []);
    folders.get(l.folder)!.push(l);
  }
  let n = 0;
  let fi = 0;
  for (const [folder, loads] of folders) {
    const dir = folder === 'INBOX' ? root : join(root, `.${folder.replace(/\//g, '.')}`);
    mk(dir);
    for (const sub of ['cur', 'new', 'tmp']) mk(join(dir, sub));
    if (folder !== 'INBOX') { writeFileSync(join(dir, 'maildirfolder'), ''); made.push(join(dir, 'maildirfolder')); }
    const uidlist = [`3 V${FIXED_UIDVALIDITY + fi} N${loads.length + 1} G${(0xa1b2c3d4 + fi).toString(16)}000000000000000000000000`];
    loads.forEach((l, i) => {
      const data = corpusFile(l.file);
      const t = BASE_MTIME + n * 3671;
      n++;
      const base = `${t}.M${n}P4242.sealdiff,S=${data.length},W=${crlf(data).length}`;
      const path = join(dir, 'cur', `${base}:2,${[...l.flags].sort().join('')}`);
      writeFileSync(path, data);
      utimesSync(path, t, t);
      made.push(path);
      uidlist.push(`${i + 1} :${base}`);
    });
    writeFileSync(join(dir, 'dovecot-uidlist'), uidlist.join('\n') + '\n');
    made.push(join(dir, 'dovecot-uidlist'));
    if (script.keywords.length) {
      writeFileSync(join(dir, 'dovecot-keywords'), script.keywords.map((k, i) => `${i} ${k}`).join('\n') + '\n');
      made.push(join(dir, 'dovecot-keywords'));
    }
    fi++;
  }
  const subs = [...folders.keys()].filter((f) => f !== 'INBOX');
  if (subs.length) { writeFileSync(join(root, 'subscriptions'), `V\t2\n\n${subs.join('\n')}\n`); made.push(join(root, 'subscriptions')); }
  if (process.getuid?.() === 0) for (const p of made) chownSync(p, uid, gid);
}

/** One client connection that records what it sends and receives. */
class Conn {
  private buf = '';
  private waiters: Array<() => void> = [];
  private closed = false;
  constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => { this.buf += d.toString('latin1'); this.wake(); });
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.on('error', () => undefined);
  }
  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => resolve(new Conn(s)));
      s.once('error', reject);
    });
  }
  private wake(): void { const w = this.waiters; this.waiters = []; for (const f of w) f(); }
  write(b: Buffer): void { this.sock.write(b); }
  /** Complete lines received so far (taken out of the buffer). */
  take(): string {
    const i = this.buf.lastIndexOf('\r\n');
    if (i < 0) return '';
    const out = this.buf.slice(0, i + 2);
    this.buf = this.buf.slice(i + 2);
    return out;
  }
  peek(): string { return this.buf; }
  /** Wait until `done(buffer)` holds; throws with what arrived after `ms`. */
  async until(done: (b: string) => boolean, what: string, ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    while (!done(this.buf)) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}; received: ${JSON.stringify(this.buf.slice(-400))}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${ms} ms; received: ${JSON.stringify(this.buf.slice(-400))}`);
      await new Promise<void>((r) => { const tm = setTimeout(r, left); this.waiters.push(() => { clearTimeout(tm); r(); }); });
    }
  }
  close(): void { this.sock.destroy(); }
}

/** The buffer ends with the tag's reply, or with it and a `* BYE` (Dovecot disconnects after DELETE of the selected mailbox). */
const tagged = (tag: string) => {
  const re = new RegExp(`(^|\\r\\n)${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (OK|NO|BAD)[^\\r\\n]*\\r\\n(\\* BYE [^\\r\\n]*\\r\\n)?$`);
  return (b: string) => re.test(b);
};
const continuation = (b: string) => /(^|\r\n)\+[^\r\n]*\r\n$/.test(b);
/** The buffer ends with a complete line (no literal pending). Good enough to spot a continuation request. */

export interface Target { name: string; port: number; user: string; password: string }

/**
 * Run a script against one server; returns the raw transcript lines
 * `C[A] …` (sent, literals abbreviated) and `S[A] …` (received).
 */
export async function runScript(script: ImapScript, target: Target): Promise<string[]> {
  const conns = new Map<string, Conn>();
  const out: string[] = [];
  const pending = new Map<string, string>(); // conn → tag still open (IDLE, AUTHENTICATE)
  const record = () => {
    for (const [name, c] of [...conns.entries()].sort()) {
      const got = c.take();
      if (got) for (const l of got.slice(0, -2).split('\r\n')) out.push(`S[${name}] ${l}`);
    }
  };
  const get = async (name: string): Promise<Conn> => {
    let c = conns.get(name);
    if (c) return c;
    c = await Conn.open(target.port);
    await c.until((b) => b.includes('\r\n'), 'greeting');
    const q = (s: string) => `"${s.replace(/[\\"]/g, '\\$&')}"`;
    c.write(Buffer.from(`L0 LOGIN ${q(target.user)} ${q(target.password)}\r\n`));
    await c.until(tagged('L0'), `${target.name} LOGIN reply`);
    const login = c.take();
    if (!/(^|\r\n)L0 OK/.test(login)) throw new Error(`${target.name}: LOGIN as ${target.user} failed: ${login}`);
    conns.set(name, c);
    return c;
  };
  try {
    for (const st of script.steps) {
      const at = `${script.name}:${st.line} on ${target.name}`;
      if (st.kind === 'sleep') { await new Promise((r) => setTimeout(r, st.ms)); record(); continue; }
      const c = await get(st.conn);
      if (st.kind === 'send') {
        out.push(`C[${st.conn}] ${st.text}`);
        const tag = pending.get(st.conn);
        const start = c.peek().length;
        c.write(Buffer.from(`${st.text}\r\n`, 'latin1'));
        await c.until((b) => (tag ? tagged(tag)(b) : false) || (b.length > start && continuation(b)), `reply to ${st.text} (${at})`);
        if (tag && tagged(tag)(c.peek())) pending.delete(st.conn);
        record();
        continue;
      }
      const sentAt = c.peek().length;
      out.push(`C[${st.conn}] ${st.text.replace(/\{\{(file|rawfile|sync|text|bin|binplus):([^}]*)\}\}/g, '{literal $2}')}`);
      for (let i = 0; i < st.chunks.length; i++) {
        const start = c.peek().length;
        c.write(st.chunks[i]);
        if (i < st.chunks.length - 1) {
          // synchronising literal: the server must say '+' (or refuse with the tag)
          await c.until((b) => b.length > start && (continuation(b) || tagged(st.tag)(b)), `'+' for a literal (${at})`);
          if (tagged(st.tag)(c.peek())) break;
        }
      }
      if (st.waitCont) {
        // IDLE's updates may follow its `+` at once: any continuation line since the command counts
        await c.until((b) => /(^|\r\n)\+[^\r\n]*\r\n/.test(b.slice(sentAt)) || tagged(st.tag)(b), `reply to ${st.text} (${at})`);
        if (!tagged(st.tag)(c.peek())) pending.set(st.conn, st.tag);
      } else {
        await c.until(tagged(st.tag), `tagged reply to ${st.tag} (${at})`);
      }
      record();
    }
    record();
  } finally {
    for (const c of conns.values()) c.close();
  }
  return out;
}

const MODSEQ_VALUE = /(\[HIGHESTMODSEQ |MODSEQ \(|MODSEQ )(\d+)/g;

/**
 * Modseq values replaced by their rank among the distinct values of the
 * transcript (`<m1>` the lowest): the two servers count differently, but which
 * message has the higher modseq, and which one a reply reports, must agree.
 */
function modseqRanks(lines: string[]): string[] {
  // the server's values only (a command's MODSEQ argument is the script's)
  const values = new Set<bigint>();
  for (const l of lines) if (l.startsWith('S[')) for (const m of l.matchAll(MODSEQ_VALUE)) values.add(BigInt(m[2]));
  const rank = new Map([...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((v, i) => [v, i + 1]));
  return lines.map((l) => (l.startsWith('S[') ? l.replace(MODSEQ_VALUE, (_, k: string, n: string) => `${k}<m${rank.get(BigInt(n))}>`) : l));
}

/** Normalise what must differ between two servers; see the header comment. */
export function normalise(lines: string[], fixedUidValidity: Set<number>, ranks = false): string[] {
  if (ranks) lines = modseqRanks(lines);
  const uv = new Map<string, string>();
  const mapUv = (n: string) => {
    if (fixedUidValidity.has(Number(n))) return n;
    if (!uv.has(n)) uv.set(n, `<uidvalidity ${uv.size + 1}>`);
    return uv.get(n)!;
  };
  return lines.map((l) => foldTiming(withoutListMarks(l))
    .replace(/\[CAPABILITY [^\]]*\]/, '[CAPABILITY …]')
    .replace(/^(S\[\w+\] \* CAPABILITY) .*/, '$1 …')
    .replace(/^(S\[\w+\] \* ID) .*/, '$1 (…)')
    .replace(/\[UIDVALIDITY (\d+)\]/, (_, n: string) => `[UIDVALIDITY ${mapUv(n)}]`)
    .replace(/\bUIDVALIDITY (\d+)/, (m, n: string) => (m.startsWith('[') ? m : `UIDVALIDITY ${mapUv(n)}`))
    .replace(/\[(COPYUID|APPENDUID) (\d+) /, (_, k: string, n: string) => `[${k} ${mapUv(n)} `)
    .replace(/\[HIGHESTMODSEQ \d+\]/g, '[HIGHESTMODSEQ <modseq>]')
    .replace(/MODSEQ \(\d+\)/g, 'MODSEQ (<modseq>)'));
}

/** Capabilities each server announced after LOGIN or CAPABILITY (for the report). */
export function capabilities(lines: string[]): Set<string> {
  const caps = new Set<string>();
  for (const l of lines) {
    const m = /\* CAPABILITY (.*)$/.exec(l) ?? /\[CAPABILITY ([^\]]*)\]/.exec(l);
    if (m) for (const c of m[1].split(' ')) caps.add(c);
  }
  return caps;
}

/**
 * Compare two normalised transcripts; returns null when equal, else a
 * readable report: the script line of the command where they part, the
 * first differing line of each, and a few lines of context from both.
 */
export function compareTranscripts(script: ImapScript, expected: string[], actual: string[], names: [string, string]): string | null {
  const n = Math.max(expected.length, actual.length);
  // a script's declared difference: those lines stand in for Dovecot's, and must still be needed
  const allowed = new Set(script.expect);
  const missing = script.expect.filter((l) => !actual.includes(l));
  if (missing.length) return `${script.name}: ${names[1]} did not send the @expect line(s):\n  ${missing.join('\n  ')}`;
  if (script.differs && expected.length === actual.length && expected.every((l, i) => l === actual[i])) {
    return `${script.name}: declared @differs (${script.differs}) but the transcripts are identical: drop the exception`;
  }
  for (let i = 0; i < n; i++) {
    if (expected[i] === actual[i] || (allowed.has(actual[i]) && expected[i] !== undefined)) continue;
    let cmd = '(start)';
    for (let j = i; j >= 0; j--) if ((expected[j] ?? actual[j])?.startsWith('C[')) { cmd = expected[j] ?? actual[j]; break; }
    const step = script.steps.find((s) => s.kind !== 'sleep' && cmd.slice(5).startsWith(s.text.slice(0, 20)));
    const ctx = (t: string[]) => t.slice(Math.max(0, i - 4), i + 4).map((l, k) => `${Math.max(0, i - 4) + k === i ? '>' : ' '} ${l.length > 300 ? `${l.slice(0, 300)}…` : l}`).join('\n');
    return `${script.name}${step ? `:${step.line}` : ''}: transcripts differ after ${cmd}\n` +
      `  ${names[0]}: ${expected[i] ?? '(nothing more)'}\n  ${names[1]}: ${actual[i] ?? '(nothing more)'}\n` +
      `--- ${names[0]} around it:\n${ctx(expected)}\n--- ${names[1]} around it:\n${ctx(actual)}`;
  }
  return null;
}

/** Folder UIDVALIDITY values written by writeMaildir (kept as they are). */
export function fixedUidValidities(script: ImapScript): Set<number> {
  const folders = new Set(['INBOX', ...script.loads.map((l) => l.folder)]);
  return new Set([...Array(folders.size).keys()].map((i) => FIXED_UIDVALIDITY + i));
}
