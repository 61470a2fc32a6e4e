/**
 * Runs a compiled Sieve script against one message (RFC 5228 sections 2.10
 * and 4-5, with fileinto, envelope, imap4flags (RFC 5232), mailbox (RFC 5490),
 * variables (RFC 5229), vacation (RFC 5230, the action only — deliver.ts
 * decides whether and how to answer), copy (RFC 3894), relational (RFC 5231),
 * subaddress (RFC 5233), body (RFC 5173, :raw/:text on the whole body) and
 * reject (RFC 5429)), date and index (RFC 5260), include (RFC 6609; the
 * caller finds the included scripts), environment (RFC 5183; the items are the caller's, e.g.
 * IMAPSieve's imap.*) with Pigeonhole's `${env.NAME}` variables
 * (vnd.dovecot.environment) and Pigeonhole's `pipe` (vnd.dovecot.pipe, an
 * action: running the program is the caller's), ihave and error (RFC 5463),
 * enotify with mailto (RFC 5435/5436: the notify action, composing and
 * sending it is the caller's), duplicate (RFC 7352: the check asks the
 * caller's database, marking is an action the caller carries out after a
 * successful delivery), spamtest/virustest (RFC 5235), and mime, foreverypart
 * and extracttext (RFC 5703; the parts come from mime.ts), editheader
 * (RFC 5293: addheader/deleteheader edit ctx.message's header fields, later
 * tests see the edit, and keep/fileinto/redirect carry the header as it was
 * when they were invoked, as Pigeonhole's message snapshots). Pure: the only
 * outside calls are `mailboxExists` and `duplicateExists`.
 * The result is the action list plus whether keep is still in effect, which
 * is what Pigeonhole's multiscript sequencing (deliver.ts) needs.
 */
import type { Arg, Command, Test } from './parser.js';
import { IHAVE_NEVER, type CompiledScript } from './compile.js';
import { matchAny, sanitize, type Comparator, type MatchSpec } from './match.js';
import { parseSieveAddress, sieveAddressError } from './address.js';
import { MAX_RUN_STEPS } from './regex.js';
import { parseAddresses, splitAddress, type ParsedMessage } from './message.js';
import { sieveParts, iterParts, childParts, mimeOptionValues, type MimeOption, type SievePart } from './mime.js';
import { datePart, localOffset, parseRfc2822Date, parseZone, type ZonedDate } from './date.js';
import { encodeUrl, parseMailto, uriScheme, NOTIFY_METHODS, dropDuplicateRecipients, type NotifyAction, type UriLog } from './notify.js';
import { duplicateId, messageIdValue, DEFAULT_PERIOD, DEFAULT_MAX_PERIOD } from './duplicate.js';
import { spamVirusValue } from './spamtest.js';
import { editheaderConfig, allowAdd, allowDelete, fieldNameValid, splitFields, newField, headerBytes, type HeaderField } from './editheader.js';

export type SieveAction =
  | { type: 'fileinto'; mailbox: string; flags: string[]; create: boolean; header?: Buffer }
  | { type: 'keep'; flags: string[] }
  | { type: 'discard' }
  | { type: 'redirect'; address: string; header?: Buffer }
  | { type: 'reject'; reason: string }
  | { type: 'vacation'; reason: string; subject?: string; from?: string; addresses: string[]; seconds: number; handle: string; mime: boolean }
  | { type: 'pipe'; program: string; args: string[]; try: boolean }
  | { type: 'notify'; notify: NotifyAction }
  /** RFC 7352: remember this id once the message is handled (`seconds` already within sieve_duplicate_max_period). */
  | { type: 'duplicate'; id: Buffer; seconds: number; last: boolean; handle?: string };

export interface SieveEnvelope { from: string; to: string; origTo?: string }

export interface RunContext {
  message: ParsedMessage;
  envelope: SieveEnvelope;
  mailboxExists?: (name: string) => Promise<boolean>;
  /** imap4flags' internal variable, carried over between scripts of one delivery. */
  flags?: string[];
  /** RFC 5183 environment items that have a value (an item missing here makes the test false, as Pigeonhole's unknown or unset ones). */
  environment?: Record<string, string>;
  /** RFC 6609 include: the compiled personal/global script, or null when it does not exist. */
  include?: (name: string, global: boolean) => Promise<CompiledScript | null>;
  /** Runtime errors that do not end the script (an invalid :regex built from variables, a regex past its step limit). */
  warn?: (msg: string) => void;
  /** The clock for `currentdate` (ms since the epoch); now when absent. */
  now?: number;
  /** RFC 7352: is this duplicate id recorded (the user's duplicate database)? Never, when absent. */
  duplicateExists?: (id: Buffer) => Promise<boolean>;
  /** Plugin settings the extensions read: sieve_duplicate_*_period, sieve_spamtest_*, sieve_virustest_*, sieve_max_actions. */
  settings?: Record<string, string>;
}

export interface RunResult {
  actions: SieveAction[]; keep: boolean; keepFlags: string[];
  /** RFC 5293: the edited header block (with its empty line) the keep stores; undefined when the header was never edited. */
  keepHeader?: Buffer;
}

export class SieveRuntimeError extends Error {}

const SYSTEM_FLAGS = ['\\seen', '\\answered', '\\flagged', '\\deleted', '\\draft'];

/** RFC 5232: flags are space-separated within each string, compared case-insensitively. */
function flagList(values: string[]): string[] {
  const out: string[] = [];
  for (const v of values) for (const f of v.split(/\s+/)) {
    if (!f) continue;
    const sys = SYSTEM_FLAGS.find((s) => s === f.toLowerCase());
    const norm = sys ? '\\' + sys[1].toUpperCase() + sys.slice(2) : f;
    if (!out.some((o) => o.toLowerCase() === norm.toLowerCase())) out.push(norm);
  }
  return out;
}

class Stop {}
/** RFC 5703 `break [:name]`: ends the innermost foreverypart loop (with that name). */
class Break { constructor(readonly name: string | null) {} }
/** RFC 6609 `return`: ends the current (included) script only. */
class Return {}
/** Pigeonhole's sieve_include_max_nesting_depth default. */
const MAX_INCLUDE_DEPTH = 10;
/** Pigeonhole's sieve_max_actions default. */
const MAX_ACTIONS = 32;

/** A Dovecot time setting in seconds ("12h", "2 days", "300"); `def` when unset or invalid. */
function seconds(v: string | undefined, def: number): number {
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(v ?? '');
  if (!m) return def;
  const unit: Record<string, number> = { '': 1, s: 1, sec: 1, secs: 1, second: 1, seconds: 1, m: 60, min: 60, mins: 60, minute: 60, minutes: 60,
    h: 3600, hour: 3600, hours: 3600, d: 86400, day: 86400, days: 86400, w: 604800, week: 604800, weeks: 604800 };
  const u = unit[m[2].toLowerCase()];
  return u === undefined ? def : Number(m[1]) * u;
}

export async function runScript(script: CompiledScript, ctx: RunContext): Promise<RunResult> {
  // Per script (an included script has its own requires and local variables, RFC 6609 3.3)
  let useVars = script.extensions.has('variables');
  let useEnvVars = useVars && script.extensions.has('vnd.dovecot.environment');
  let exts = script.extensions;
  let vars = new Map<string, string>();
  let globalNames = new Set<string>();
  const globals = new Map<string, string>();
  const included = new Set<string>();
  let depth = 0;
  /** The map a variable name lives in: declared `global` names and `global.NAME` share one across scripts. */
  const scopeOf = (name: string): [Map<string, string>, string] | null => {
    if (name.startsWith('global.')) return [globals, name.slice(7)];
    if (name.includes('.')) return null;
    return globalNames.has(name) ? [globals, name] : [vars, name];
  };
  let captures: string[] = [];
  // all :regex matches of this run share one step budget: many keys × many values stay bounded too
  const regexBudget = { left: MAX_RUN_STEPS };
  const flagVars = new Map<string, string[]>();
  let internalFlags = [...(ctx.flags ?? [])];
  const actions: SieveAction[] = [];
  let implicitKeep = true;
  let explicitKeep = false;
  // RFC 5703: the message's parts (built when a script first looks at them) and the foreverypart loops running
  let parts: SievePart[] | null = null;
  const getParts = async () => (parts ??= sieveParts(ctx.message.whole ? await ctx.message.whole() : ctx.message.raw));
  const loops: Array<{ name: string | null; part: number }> = [];

  const expand = (s: string): string => {
    if (!useVars || !s.includes('${')) return s;
    return s.replace(/\$\{([A-Za-z0-9_.]+)\}/g, (m, name: string) => {
      if (/^[0-9]+$/.test(name)) return captures[Number(name)] ?? '';
      // vnd.dovecot.environment: ${env.NAME} reads an environment item (empty when it has no value)
      if (useEnvVars && name.toLowerCase().startsWith('env.')) return ctx.environment?.[name.slice(4).toLowerCase()] ?? '';
      const sc = scopeOf(name.toLowerCase());
      if (!sc) return m;
      return sc[0].get(sc[1]) ?? '';
    });
  };

  interface Parsed { tags: Map<string, Arg | true>; pos: Arg[] }
  const split = (args: Arg[]): Parsed => {
    const tags = new Map<string, Arg | true>();
    const pos: Arg[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a.kind === 'tag') {
        const nx = args[i + 1];
        const takes = ['comparator', 'value', 'count', 'days', 'subject', 'from', 'addresses', 'handle', 'flags', 'content', 'zone', 'index',
          'importance', 'options', 'message', 'seconds', 'header', 'uniqueid', 'param', 'name', 'first'].includes(a.name);
        if (takes && nx) { tags.set(a.name, nx); i++; } else tags.set(a.name, true);
      } else pos.push(a);
    }
    return { tags, pos };
  };
  const strs = (a: Arg | true | undefined): string[] => (a && a !== true && a.kind === 'str' ? a.values.map(expand) : []);
  const str = (a: Arg | true | undefined): string => strs(a)[0] ?? '';

  const matchSpec = (p: Parsed): MatchSpec => {
    const cmp = (str(p.tags.get('comparator')) || 'i;ascii-casemap') as Comparator;
    for (const t of ['is', 'contains', 'matches', 'regex'] as const) if (p.tags.has(t)) return { type: t, comparator: cmp };
    if (p.tags.has('value')) return { type: 'value', rel: str(p.tags.get('value')).toLowerCase(), comparator: cmp };
    if (p.tags.has('count')) return { type: 'count', rel: str(p.tags.get('count')).toLowerCase(), comparator: cmp };
    return { type: 'is', comparator: cmp };
  };
  const doMatch = (values: string[], keys: string[], spec: MatchSpec) =>
    matchAny(values, keys, spec, useVars ? (c) => { captures = c; } : undefined, ctx.warn, regexBudget);

  /** The edited header block now (a snapshot for the action being added), or undefined while unedited. */
  const headerNow = () => (ctx.message.fields ? headerBytes(ctx.message.fields) : undefined);
  /** sieve_message_edit: the header fields to edit, split from the message on the first edit. */
  const editFields = (): HeaderField[] => {
    const m = ctx.message;
    m.fields ??= splitFields(m.raw.subarray(0, m.headerLength).toString('latin1'));
    return m.fields;
  };
  /** After an edit: the tests read the fields as edited (RFC 5293 5). */
  const edited = (fields: HeaderField[]) => {
    const named = fields.filter((f) => f.name);
    ctx.message.headers = named.map((f) => ({ name: f.name, value: f.value }));
    ctx.message.rawHeaders = named.map((f) => ({ name: f.name, value: f.value }));
  };
  const editCfg = editheaderConfig(ctx.settings);

  const addrPart = (p: Parsed, addr: string): string | null => {
    const parts = splitAddress(addr);
    if (p.tags.has('localpart')) return parts.localpart;
    if (p.tags.has('domain')) return parts.domain;
    if (p.tags.has('user') || p.tags.has('detail')) {
      const i = parts.localpart.indexOf('+');
      if (p.tags.has('user')) return i < 0 ? parts.localpart : parts.localpart.slice(0, i);
      return i < 0 ? null : parts.localpart.slice(i + 1);
    }
    return addr === '' ? '' : parts.all;
  };

  /**
   * Values of the named fields; with RFC 5260 `:index n` only the n-th
   * occurrence of each name (counted from the end with `:last`).
   */
  const headerValues = (names: string[], p?: Parsed) => {
    const idxArg = p?.tags.get('index');
    const idx = idxArg && idxArg !== true && idxArg.kind === 'num' ? idxArg.value : 0;
    const lower = names.map((n) => n.toLowerCase());
    if (!idx) return ctx.message.headers.filter((h) => lower.includes(h.name)).map((h) => h.value);
    const out: string[] = [];
    for (const n of lower) {
      const vals = ctx.message.headers.filter((h) => h.name === n).map((h) => h.value);
      const v = p!.tags.has('last') ? vals[vals.length - idx] : vals[idx - 1];
      if (v !== undefined) out.push(v);
    }
    return out;
  };

  /**
   * tag-mime.c's header override: without a loop and :anychild the
   * message's fields; in a foreverypart loop the current part's; :anychild
   * adds the parts below (outside a loop: every part). With
   * :type/:subtype/:contenttype/:param (header test) the selected piece.
   */
  const mimeValues = async (names: string[], p: Parsed): Promise<string[]> => {
    const cur = loops.length ? loops[loops.length - 1].part : -1;
    const any = p.tags.has('anychild');
    let fields: Array<{ name: string; value: string }>;
    const lower = names.map((n) => n.toLowerCase());
    if (cur < 0 && !any) fields = lower.flatMap((n) => ctx.message.headers.filter((h) => h.name === n));
    else {
      const ps = await getParts();
      const idxs = !any ? [cur] : cur < 0 ? iterParts(ps, 0, 0) : iterParts(ps, cur, cur);
      fields = lower.flatMap((n) => idxs.flatMap((i) => ps[i].headers.filter((h) => h.name === n)));
    }
    const opt = (['type', 'subtype', 'contenttype', 'param'] as const).find((o) => p.tags.has(o)) as MimeOption | undefined;
    if (!opt) return fields.map((f) => f.value);
    const params = strs(p.tags.get('param'));
    return fields.flatMap((f) => mimeOptionValues(f.name, f.value, opt, params));
  };
  const fieldValues = (names: string[], p: Parsed) => (p.tags.has('mime') ? mimeValues(names, p) : Promise.resolve(headerValues(names, p)));

  /** RFC 5229 4.1 modifiers (set, extracttext), in Pigeonhole's order of precedence. */
  const modify = (v: string, p: Parsed): string => {
    if (p.tags.has('lower')) v = v.toLowerCase();
    if (p.tags.has('upper')) v = v.toUpperCase();
    if (p.tags.has('lowerfirst')) v = v.slice(0, 1).toLowerCase() + v.slice(1);
    if (p.tags.has('upperfirst')) v = v.slice(0, 1).toUpperCase() + v.slice(1);
    if (p.tags.has('quotewildcard')) v = v.replace(/[*?\\]/g, '\\$&');
    // RFC 5435 :encodeurl, precedence 15: after :quotewildcard, before :length
    if (p.tags.has('encodeurl')) v = encodeUrl(v);
    if (p.tags.has('length')) v = String([...v].length);
    return v;
  };
  const assign = (name: string, v: string) => { const sc = scopeOf(name.toLowerCase()); if (sc) sc[0].set(sc[1], v); };

  /** The zone a date test shows its dates in: :zone (invalid → local, as Pigeonhole after its warning), :originalzone, else local. */
  const zoned = (p: Parsed, d: ZonedDate): ZonedDate => {
    if (p.tags.has('originalzone')) return d;
    if (p.tags.has('zone')) { const z = parseZone(str(p.tags.get('zone'))); if (z !== null) return { ms: d.ms, offset: z }; }
    return { ms: d.ms, offset: localOffset(d.ms) };
  };
  const dateParts = (p: Parsed, dates: ZonedDate[], part: string): string[] =>
    dates.map((d) => datePart(zoned(p, d), part)).filter((x): x is string => x !== null);

  async function test(t: Test): Promise<boolean> {
    const p = split(t.args);
    switch (t.name) {
      case 'true': return true;
      case 'false': return false;
      case 'not': return !(await test(t.tests[0]));
      case 'allof': for (const x of t.tests) if (!(await test(x))) return false; return true;
      case 'anyof': for (const x of t.tests) if (await test(x)) return true; return false;
      case 'exists': {
        for (const n of strs(p.pos[0])) if (!(await fieldValues([n], p)).length) return false;
        return true;
      }
      case 'size': {
        const lim = p.pos[0].kind === 'num' ? p.pos[0].value : 0;
        return p.tags.has('over') ? ctx.message.size > lim : ctx.message.size < lim;
      }
      case 'header': return doMatch(await fieldValues(strs(p.pos[0]), p), strs(p.pos[1]), matchSpec(p));
      case 'date': {
        // Received: the date follows the last ';' (RFC 5260 4.1). Pigeonhole 0.5
        // reads only the first field of the name and does not apply :index/:last
        // here (checked against sieve-test), so neither do we.
        const name = str(p.pos[0]).toLowerCase();
        const dates = headerValues([name]).slice(0, 1)
          .map((v) => parseRfc2822Date(name === 'received' ? v.slice(v.lastIndexOf(';') + 1) : v))
          .filter((d): d is ZonedDate => d !== null);
        return doMatch(dateParts(p, dates, str(p.pos[1])), strs(p.pos[2]), matchSpec(p));
      }
      case 'currentdate': {
        const ms = ctx.now ?? Date.now();
        return doMatch(dateParts(p, [{ ms: Math.floor(ms / 1000) * 1000, offset: 0 }], str(p.pos[0])), strs(p.pos[1]), matchSpec(p));
      }
      case 'address': {
        const values: string[] = [];
        for (const v of await fieldValues(strs(p.pos[0]), p)) for (const a of parseAddresses(v)) { const x = addrPart(p, a); if (x !== null) values.push(x); }
        return doMatch(values, strs(p.pos[1]), matchSpec(p));
      }
      case 'envelope': {
        const values: string[] = [];
        for (const part of strs(p.pos[0]).map((s) => s.toLowerCase())) {
          const a = part === 'from' ? ctx.envelope.from : part === 'to' ? ctx.envelope.to : undefined;
          if (a === undefined) continue;
          const x = addrPart(p, a); if (x !== null) values.push(x);
        }
        return doMatch(values, strs(p.pos[1]), matchSpec(p));
      }
      case 'string': {
        const src = strs(p.pos[0]);
        const spec = matchSpec(p);
        // RFC 5229 5: empty source strings are not counted by :count.
        return doMatch(spec.type === 'count' ? src.filter((s) => s !== '') : src, strs(p.pos[1]), spec);
      }
      case 'hasflag': {
        const cur = p.pos.length === 2 ? flagVars.get(str(p.pos[0]).toLowerCase()) ?? [] : internalFlags;
        return doMatch(cur, strs(p.pos[p.pos.length - 1]), matchSpec(p));
      }
      case 'mailboxexists': {
        for (const m of strs(p.pos[0])) if (!ctx.mailboxExists || !(await ctx.mailboxExists(m))) return false;
        return true;
      }
      // compile.ts loaded every extension of a true ihave into the script's set (a false one never ran its block)
      case 'ihave': return strs(p.pos[0]).every((n) => exts.has(n) && !IHAVE_NEVER.includes(n));
      case 'environment': {
        const v = ctx.environment?.[str(p.pos[0])]; // item names are case-sensitive (a str_hash table in Pigeonhole)
        return v !== undefined && doMatch([v], strs(p.pos[1]), matchSpec(p));
      }
      case 'valid_notify_method': return strs(p.pos[0]).every((u) => notifyUri(u, null) !== null);
      case 'notify_method_capability': {
        const uri = str(p.pos[0]);
        const s = uriScheme(uri);
        if (!s) { ctx.warn?.(`invalid scheme part for method URI '${sanitize(uri, 80)}'`); return false; }
        if (!NOTIFY_METHODS.includes(s.scheme.toLowerCase())) { ctx.warn?.(`invalid notify method '${s.scheme}'`); return false; }
        // ntfy_mailto_runtime_get_notify_capability: a valid URI is "maybe" online, nothing else is known
        if (!notifyUri(uri, null) || str(p.pos[1]).toLowerCase() !== 'online') return false;
        return doMatch(['maybe'], strs(p.pos[2]), matchSpec(p));
      }
      case 'duplicate': return duplicateTest(p);
      case 'spamtest': case 'virustest':
        return doMatch([await spamVirusValue(ctx.settings ?? {}, t.name, p.tags.has('percent'), ctx.message, ctx.warn)], strs(p.pos[0]), matchSpec(p));
      case 'body': {
        const raw = ctx.message.whole ? await ctx.message.whole() : ctx.message.raw;
        const body = raw.subarray(ctx.message.bodyStart).toString('utf8');
        return doMatch([body], strs(p.pos[0]), matchSpec(p));
      }
    }
    throw new SieveRuntimeError(`unknown test ${t.name}`);
  }

  /** The mailto URI of a notify method, or null (errors logged through `log` when given). */
  function notifyUri(uri: string, log: UriLog | null) {
    const s = uriScheme(uri);
    if (!s || !NOTIFY_METHODS.includes(s.scheme.toLowerCase())) return null;
    return parseMailto(s.body, log ?? { error: () => undefined, warning: () => undefined });
  }

  /**
   * tst-duplicate.c / ext_duplicate_check: the value (:uniqueid, the first
   * :header field, else the Message-ID), its id, asked once per run per
   * id+handle+:last; a mark is added when it is new or with :last.
   */
  const dupChecked = new Map<string, boolean>();
  async function duplicateTest(p: Parsed): Promise<boolean> {
    let value: string | undefined;
    if (p.tags.has('uniqueid') || p.tags.has('value')) value = str(p.tags.get(p.tags.has('uniqueid') ? 'uniqueid' : 'value'));
    else if (p.tags.has('header')) value = headerValues([str(p.tags.get('header'))])[0];
    else value = messageIdValue(headerValues(['message-id'])[0]);
    if (value === undefined) return false;
    const handle = p.tags.has('handle') ? str(p.tags.get('handle')) : undefined;
    const last = p.tags.has('last');
    const id = duplicateId(handle, value, last);
    const key = `${id.toString('hex')}\0${handle ?? ''}\0${last}`;
    const cached = dupChecked.get(key);
    if (cached !== undefined) return cached;
    const s = p.tags.get('seconds');
    const max = seconds(ctx.settings?.sieve_duplicate_max_period, DEFAULT_MAX_PERIOD);
    let period = s && s !== true && s.kind === 'num' ? s.value : seconds(ctx.settings?.sieve_duplicate_default_period, DEFAULT_PERIOD);
    if (max > 0 && period > max) period = max;
    let dup = ctx.duplicateExists ? await ctx.duplicateExists(id) : false;
    if (!dup && last && ctx.duplicateExists) dup = await ctx.duplicateExists(duplicateId(handle, value, false));
    if (!dup || last) add({ type: 'duplicate', id, seconds: period, last, handle });
    dupChecked.set(key, dup);
    return dup;
  }

  const maxActions = Number(ctx.settings?.sieve_max_actions ?? MAX_ACTIONS) || 0;
  const keyOf = (a: SieveAction) => a.type === 'fileinto' ? 'f:' + a.mailbox : a.type === 'redirect' ? 'r:' + a.address.toLowerCase() : a.type;
  const add = (a: SieveAction) => {
    const push = (x: SieveAction) => {
      // sieve_result_add_action: a new action past sieve_max_actions fails the script
      if (maxActions > 0 && actions.length >= maxActions) throw new SieveRuntimeError(`total number of actions exceeds policy limit (${actions.length + 1} > ${maxActions})`);
      actions.push(x);
    };
    if (a.type === 'pipe' || a.type === 'duplicate') { push(a); return; } // each pipe runs its program
    if (a.type === 'notify') {
      // act_notify_check_duplicate: recipients an earlier notify has are dropped; one left with none is not added
      for (const x of actions) if (x.type === 'notify' && dropDuplicateRecipients(a.notify, x.notify)) return;
      push(a);
      return;
    }
    const k = keyOf(a);
    const prev = actions.findIndex((x) => keyOf(x) === k);
    if (prev >= 0) {
      // Pigeonhole merges duplicates; a later fileinto's flags win.
      if (a.type === 'fileinto') actions[prev] = a;
      return;
    }
    push(a);
  };

  async function block(cmds: Command[]): Promise<void> {
    let lastIf: boolean | null = null; // null = no pending if chain
    for (const c of cmds) {
      const p = split(c.args);
      switch (c.name) {
        case 'require': break;
        case 'if': lastIf = await test(c.tests[0]); if (lastIf) await block(c.block!); continue;
        case 'elsif':
          if (lastIf === false) { lastIf = await test(c.tests[0]); if (lastIf) await block(c.block!); }
          continue;
        case 'else': if (lastIf === false) await block(c.block!); lastIf = null; continue;
        case 'stop': throw new Stop();
        case 'keep':
          explicitKeep = true; implicitKeep = false;
          keepHeaderSeen = headerNow();
          keepFlagsSeen = p.tags.has('flags') ? flagList(strs(p.tags.get('flags'))) : [...internalFlags];
          break;
        case 'discard': implicitKeep = false; break;
        case 'redirect': {
          // cmd-redirect.c at run time: an invalid address (a variable with CR/LF, say) fails the script, keep happens
          const raw = str(p.pos[0]);
          const parsed = parseSieveAddress(raw);
          if ('error' in parsed) throw new SieveRuntimeError(`specified redirect address '${sanitize(raw, 128)}' is invalid: ${parsed.error}`);
          add({ type: 'redirect', address: parsed.address, header: headerNow() });
          if (!p.tags.has('copy')) implicitKeep = false;
          break;
        }
        case 'fileinto':
          add({ type: 'fileinto', mailbox: str(p.pos[0]), flags: p.tags.has('flags') ? flagList(strs(p.tags.get('flags'))) : [...internalFlags], create: p.tags.has('create'), header: headerNow() });
          if (!p.tags.has('copy')) implicitKeep = false;
          break;
        case 'reject': add({ type: 'reject', reason: str(p.pos[0]) }); implicitKeep = false; break;
        case 'addheader': {
          // cmd-addheader.c at run time (the value checks also cover values built from variables)
          const name = str(p.pos[0]);
          const value = str(p.pos[1]);
          if (!fieldNameValid(name)) throw new SieveRuntimeError(`addheader action: specified field name \`${sanitize(name, 80)}' is invalid`);
          if (!allowAdd(editCfg, name)) { ctx.warn?.(`addheader action: adding specified header field \`${sanitize(name, 80)}' is forbidden; modification denied`); break; }
          if (value.includes('\0')) throw new SieveRuntimeError(`addheader action: specified value \`${sanitize(value, 80)}' is invalid (contains NUL character)`);
          const size = Buffer.byteLength(value);
          if (size > editCfg.maxHeaderSize) throw new SieveRuntimeError(`addheader action: specified header value \`${sanitize(value, 80)}' is too large (${size} bytes)`);
          const fields = editFields();
          if (p.tags.has('last')) fields.push(newField(name, value)); else fields.unshift(newField(name, value));
          edited(fields);
          break;
        }
        case 'deleteheader': {
          const name = str(p.pos[0]);
          if (!fieldNameValid(name)) throw new SieveRuntimeError(`deleteheader action: specified field name \`${sanitize(name, 80)}' is invalid`);
          if (!allowDelete(editCfg, name)) { ctx.warn?.(`deleteheader action: deleting specified header field \`${sanitize(name, 80)}' is forbidden; modification denied`); break; }
          const idxArg = p.tags.get('index');
          const index = idxArg && idxArg !== true && idxArg.kind === 'num' ? idxArg.value : 0;
          const fields = editFields();
          const lower = name.toLowerCase();
          // occurrences of the field, counted from the end with :last; positions count the original occurrences
          const at = fields.map((f, i) => (f.name === lower ? i : -1)).filter((i) => i >= 0);
          if (p.tags.has('last')) at.reverse();
          const patterns = p.pos.length > 1 ? strs(p.pos[1]) : null;
          const drop = new Set<number>();
          for (let k = 0; k < at.length; k++) {
            if (index && k + 1 !== index) continue;
            if (!patterns || await doMatch([fields[at[k]].value], patterns, matchSpec(p))) drop.add(at[k]);
          }
          if (drop.size) { const kept = fields.filter((_f, i) => !drop.has(i)); fields.length = 0; fields.push(...kept); edited(fields); }
          break;
        }
        case 'pipe':
          add({ type: 'pipe', program: str(p.pos[0]), args: strs(p.pos[1]), try: p.tags.has('try') });
          if (!p.tags.has('copy')) implicitKeep = false;
          break;
        case 'notify': {
          const uri = str(p.pos[0]);
          const s = uriScheme(uri);
          if (!s) throw new SieveRuntimeError(`invalid scheme part for method URI '${sanitize(uri, 80)}'`);
          if (!NOTIFY_METHODS.includes(s.scheme.toLowerCase())) throw new SieveRuntimeError(`invalid notify method '${s.scheme}'`);
          const from = p.tags.has('from') ? str(p.tags.get('from')) : undefined;
          const fromBad = from !== undefined ? sieveAddressError(from) : null;
          if (fromBad) throw new SieveRuntimeError(`notify_action: specified :from address '${sanitize(from!, 128)}' is invalid for the mailto method: ${fromBad}`);
          let failed: string | null = null;
          const parsed = parseMailto(s.body, { error: (m) => { failed = m; }, warning: (m) => ctx.warn?.(`notify_action: mailto URI: ${m}`) });
          if (!parsed) throw new SieveRuntimeError(`notify_action: mailto URI: ${failed}`);
          const imp = Number(str(p.tags.get('importance')) || 2);
          add({ type: 'notify', notify: { method: 'mailto', importance: Math.min(3, Math.max(1, imp || 2)), message: p.tags.has('message') ? str(p.tags.get('message')) : undefined, from, uri: parsed } });
          break;
        }
        case 'vacation': {
          const days = p.tags.get('days');
          const n = days && days !== true && days.kind === 'num' ? days.value : 7;
          const reason = str(p.pos[0]);
          const subject = p.tags.has('subject') ? str(p.tags.get('subject')) : undefined;
          const from = p.tags.has('from') ? str(p.tags.get('from')) : undefined;
          // cmd-vacation.c at run time: an invalid :from is reported (the reply folds it, composeVacation),
          // invalid :addresses items are reported and ignored
          const fromBad = from !== undefined ? sieveAddressError(from) : null;
          if (fromBad) ctx.warn?.(`specified :from address '${sanitize(from!, 128)}' is invalid for vacation action: ${fromBad}`);
          const addresses = strs(p.tags.get('addresses')).filter((a) => {
            const bad = sieveAddressError(a);
            if (bad) ctx.warn?.(`specified :addresses item '${sanitize(a, 128)}' is invalid: ${bad} for vacation action (ignored)`);
            return !bad;
          });
          const handle = p.tags.has('handle') ? str(p.tags.get('handle'))
            : reason + (subject ?? '') + (from ?? '<default-from>') + (p.tags.has('mime') ? '<MIME>' : '<NO-MIME>');
          if (!actions.some((a) => a.type === 'vacation'))
            actions.push({ type: 'vacation', reason, subject, from, addresses, seconds: Math.max(1, n) * 86400, handle, mime: p.tags.has('mime') });
          break;
        }
        case 'setflag': case 'addflag': case 'removeflag': {
          const list = flagList(strs(p.pos[p.pos.length - 1]));
          const varName = p.pos.length === 2 ? str(p.pos[0]).toLowerCase() : null;
          const cur = varName ? flagVars.get(varName) ?? [] : internalFlags;
          let next: string[];
          if (c.name === 'setflag') next = list;
          else if (c.name === 'addflag') next = flagList([...cur, ...list]);
          else next = cur.filter((f) => !list.some((r) => r.toLowerCase() === f.toLowerCase()));
          if (varName) flagVars.set(varName, next); else internalFlags = next;
          break;
        }
        case 'set': assign(str(p.pos[0]), modify(str(p.pos[1]), p)); break;
        case 'foreverypart': {
          // top level: every part, the message first; nested: the parts below the current one
          const ps = await getParts();
          const list = loops.length ? childParts(ps, loops[loops.length - 1].part) : iterParts(ps, 0, 0);
          const nameArg = p.tags.get('name');
          const frame = { name: nameArg && nameArg !== true && nameArg.kind === 'str' ? nameArg.values[0] : null, part: -1 };
          loops.push(frame);
          try {
            for (const i of list) { frame.part = i; await block(c.block!); }
          } catch (e) {
            if (!(e instanceof Break) || (e.name !== null && e.name !== frame.name)) throw e;
          } finally { loops.pop(); }
          break;
        }
        case 'break': {
          const nameArg = p.tags.get('name');
          throw new Break(nameArg && nameArg !== true && nameArg.kind === 'str' ? nameArg.values[0] : null);
        }
        case 'extracttext': {
          const frame = loops[loops.length - 1];
          if (!frame) throw new SieveRuntimeError('extracttext outside foreverypart context');
          let v = (await getParts())[frame.part].text();
          const first = p.tags.get('first');
          // :first counts octets, as Pigeonhole does
          if (first && first !== true && first.kind === 'num') v = Buffer.from(v, 'utf8').subarray(0, first.value).toString('utf8');
          assign(str(p.pos[0]), modify(v, p));
          break;
        }
        case 'global': for (const n of strs(p.pos[0])) globalNames.add(n.toLowerCase()); break;
        case 'return': throw new Return();
        // RFC 5463 5: the script fails with the message; the caller logs it and keeps the message (implicit keep)
        case 'error': throw new SieveRuntimeError(str(p.pos[0]));
        case 'include': {
          const name = str(p.pos[0]);
          const isGlobal = p.tags.has('global');
          const key = `${isGlobal ? 'g' : 'p'}:${name}`;
          if (p.tags.has('once') && included.has(key)) break;
          const sub = ctx.include ? await ctx.include(name, isGlobal) : null;
          if (!sub) {
            if (p.tags.has('optional')) break;
            throw new SieveRuntimeError(`included ${isGlobal ? 'global' : 'personal'} script '${name}' does not exist`);
          }
          if (depth >= MAX_INCLUDE_DEPTH) throw new SieveRuntimeError(`include: maximum nesting depth ${MAX_INCLUDE_DEPTH} exceeded`);
          included.add(key);
          const saved = [useVars, useEnvVars, exts, vars, globalNames, captures] as const;
          exts = sub.extensions;
          useVars = sub.extensions.has('variables');
          useEnvVars = useVars && sub.extensions.has('vnd.dovecot.environment');
          vars = new Map(); globalNames = new Set(); captures = [];
          depth++;
          try { await block(sub.commands); } catch (e) { if (!(e instanceof Return)) throw e; } finally {
            depth--;
            [useVars, useEnvVars, exts, vars, globalNames, captures] = saved;
          }
          break;
        }
        default: throw new SieveRuntimeError(`unknown command ${c.name}`);
      }
      lastIf = null;
    }
  }

  let keepFlagsSeen: string[] | null = null;
  let keepHeaderSeen: Buffer | undefined;
  try { await block(script.commands); } catch (e) { if (!(e instanceof Stop) && !(e instanceof Return)) throw e; }
  const keep = explicitKeep || implicitKeep;
  return { actions, keep, keepFlags: keepFlagsSeen ?? internalFlags, keepHeader: explicitKeep ? keepHeaderSeen : headerNow() };
}
