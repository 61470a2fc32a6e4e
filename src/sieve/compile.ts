/**
 * Validation of a parsed Sieve script the way Pigeonhole's validator does it
 * before running anything: `require` at the top, every command/test known and
 * its extension required, tagged arguments known with their value, the
 * positional argument count right, blocks where needed. Messages are
 * Pigeonhole's (sieve-validator.c, sieve-commands.c) so sievec/sieve-test and
 * Sealmail report the same "line N: error: ..." for the same script.
 */
import { parseScript, SieveSyntaxErrors, type Arg, type Command, type Test } from './parser.js';
import { SieveSyntaxError } from './lexer.js';
import { validateRegex, RegexSyntaxError } from './regex.js';
import { regexErrorText, sanitize } from './match.js';
import { sieveAddressError } from './address.js';
import { CORE_EXTENSIONS } from './extensions.js';
import { editheaderConfig, fieldNameValid } from './editheader.js';
import { NOTIFY_COMMANDS, notifyTests, ENCODEURL_TAG, checkExtensionCommand, requireConflict } from './compile-notify.js';

/**
 * Capabilities Sealmail implements (RFC names as in the `require` list), in
 * the order Pigeonhole registers them, which is the order of managesieved's
 * SIEVE capability line.
 */
export const SUPPORTED_EXTENSIONS = [
  'fileinto', 'reject', 'envelope', 'encoded-character', 'vacation', 'subaddress',
  'comparator-i;ascii-numeric', 'relational', 'regex', 'imap4flags', 'copy', 'include',
  'variables', 'body', 'environment', 'mailbox', 'date', 'index', 'ihave',
  'mime', 'foreverypart', 'extracttext',
  'enotify', 'duplicate', 'vnd.dovecot.duplicate', 'spamtest', 'spamtestplus', 'virustest', 'editheader',
];

/**
 * Extensions only some contexts offer, as Pigeonhole registers them: `imapsieve`
 * (sieve_imapsieve plugin, IMAPSieve runs), the `vnd.dovecot.environment`
 * variables namespace, and `vnd.dovecot.pipe`
 * (sieve_extprograms, enabled through sieve_global_extensions for admin
 * scripts). The caller passes those it allows (CompileOptions.extensions).
 */
export const CONTEXT_EXTENSIONS = ['imapsieve', 'vnd.dovecot.environment', 'vnd.dovecot.pipe'];

export interface CompileOptions {
  /** Context extensions (CONTEXT_EXTENSIONS) this script may require. */
  extensions?: readonly string[];
  /** The extensions switched on (src/sieve/extensions.ts: sieve_extensions, plus sieve_global_extensions for admin scripts); Pigeonhole's core set when absent. */
  enabled?: readonly string[];
  /** Plugin settings compile checks read (sieve_editheader_max_header_size). */
  settings?: Record<string, string>;
}

type TagArg = 'none' | 'str' | 'strlist' | 'num';
/**
 * A command or test: its extension(s), positional argument count, tags (with
 * the extension a tag needs; `parameter`: the tag's value is checked as
 * sieve_validate_tag_parameter does, or with :importance's own text), block and sub-tests, and where given the positional
 * arguments' names and types (checked as sieve_validate_positional_argument).
 */
export interface Spec {
  ext?: string | string[]; min: number; max: number; tags: Record<string, TagArg | { arg: TagArg; ext?: string; parameter?: 'importance' | 'tag' }>;
  block?: boolean; test?: 'one' | 'list' | 'none'; pos?: [string, 'str' | 'strlist'][];
}
/** Is the command's extension (one of them) loaded? */
const specOn = (spec: Spec, ext: ReadonlySet<string>) => !spec.ext || (typeof spec.ext === 'string' ? ext.has(spec.ext) : spec.ext.some((e) => ext.has(e)));

const MATCH_TAGS: Spec['tags'] = {
  is: 'none', contains: 'none', matches: 'none', comparator: 'str',
  regex: { arg: 'none', ext: 'regex' }, value: { arg: 'str', ext: 'relational' }, count: { arg: 'str', ext: 'relational' },
};
/** RFC 5260 index extension: which occurrence of the header field, from the end with :last. */
const INDEX_TAGS: Spec['tags'] = { index: { arg: 'num', ext: 'index' }, last: { arg: 'none', ext: 'index' } };
/** RFC 5703 4: :mime and :anychild on header/address/exists; the option tags on header only. */
const MIME_TAGS: Spec['tags'] = { mime: { arg: 'none', ext: 'mime' }, anychild: { arg: 'none', ext: 'mime' } };
const MIME_OPTION_TAGS: Spec['tags'] = {
  type: { arg: 'none', ext: 'mime' }, subtype: { arg: 'none', ext: 'mime' }, contenttype: { arg: 'none', ext: 'mime' }, param: { arg: 'strlist', ext: 'mime' },
};
/** The set command's modifiers (RFC 5229 4.1), which extracttext takes too. */
const SET_MODIFIERS: Spec['tags'] = { lower: 'none', upper: 'none', lowerfirst: 'none', upperfirst: 'none', quotewildcard: 'none', length: 'none' };
/** Pigeonhole's SIEVE_MAX_LOOP_DEPTH: foreverypart loops nest at most this deep. */
export const MAX_LOOP_DEPTH = 4;
const ADDR_TAGS: Spec['tags'] = { all: 'none', localpart: 'none', domain: 'none', user: { arg: 'none', ext: 'subaddress' }, detail: { arg: 'none', ext: 'subaddress' } };

const COMMANDS: Record<string, Spec> = {
  require: { min: 1, max: 1, tags: {} },
  if: { min: 0, max: 0, tags: {}, block: true, test: 'one' },
  elsif: { min: 0, max: 0, tags: {}, block: true, test: 'one' },
  else: { min: 0, max: 0, tags: {}, block: true },
  stop: { min: 0, max: 0, tags: {} },
  keep: { min: 0, max: 0, tags: { flags: { arg: 'strlist', ext: 'imap4flags' } } },
  discard: { min: 0, max: 0, tags: {} },
  redirect: { min: 1, max: 1, tags: { copy: { arg: 'none', ext: 'copy' } } },
  fileinto: { ext: 'fileinto', min: 1, max: 1, tags: { copy: { arg: 'none', ext: 'copy' }, create: { arg: 'none', ext: 'mailbox' }, flags: { arg: 'strlist', ext: 'imap4flags' } } },
  reject: { ext: 'reject', min: 1, max: 1, tags: {} },
  vacation: { ext: 'vacation', min: 1, max: 1, tags: { days: 'num', subject: 'str', from: 'str', addresses: 'strlist', mime: 'none', handle: 'str' } },
  setflag: { ext: 'imap4flags', min: 1, max: 2, tags: {} },
  addflag: { ext: 'imap4flags', min: 1, max: 2, tags: {} },
  removeflag: { ext: 'imap4flags', min: 1, max: 2, tags: {} },
  set: { ext: 'variables', min: 2, max: 2, tags: { ...SET_MODIFIERS, ...ENCODEURL_TAG } },
  // RFC 5703 3 and 7
  foreverypart: { ext: 'foreverypart', min: 0, max: 0, tags: { name: 'str' }, block: true },
  break: { ext: 'foreverypart', min: 0, max: 0, tags: { name: 'str' } },
  extracttext: { ext: 'extracttext', min: 1, max: 1, tags: { ...SET_MODIFIERS, ...ENCODEURL_TAG, first: 'num' } },
  // RFC 6609: the included script is looked up by the caller (deliver.ts); compile only checks the name
  include: { ext: 'include', min: 1, max: 1, tags: { personal: 'none', global: 'none', once: 'none', optional: 'none' } },
  return: { ext: 'include', min: 0, max: 0, tags: {} },
  global: { ext: 'include', min: 1, max: 1, tags: {} },
  // sieve_extprograms: pipe [:try] [:copy] <program-name: string> [<arguments: string-list>]
  pipe: { ext: 'vnd.dovecot.pipe', min: 1, max: 2, tags: { copy: { arg: 'none', ext: 'copy' }, try: 'none' } },
  // RFC 5463: error <message: string> fails the script (the implicit keep then happens)
  error: { ext: 'ihave', min: 1, max: 1, tags: {} },
  // RFC 5293: addheader [:last] <field-name: string> <value: string>;
  // deleteheader [:index n [:last]] [COMPARATOR] [MATCH-TYPE] <field-name: string> [<value-patterns: string-list>]
  addheader: { ext: 'editheader', min: 2, max: 2, tags: { last: 'none' }, pos: [['field-name', 'str'], ['value', 'str']] },
  deleteheader: { ext: 'editheader', min: 0, max: Infinity, tags: { ...MATCH_TAGS, index: { arg: 'num', parameter: 'tag' }, last: 'none' } },
  ...NOTIFY_COMMANDS,
};

const TESTS: Record<string, Spec> = {
  true: { min: 0, max: 0, tags: {} },
  false: { min: 0, max: 0, tags: {} },
  not: { min: 0, max: 0, tags: {}, test: 'one' },
  allof: { min: 0, max: 0, tags: {}, test: 'list' },
  anyof: { min: 0, max: 0, tags: {}, test: 'list' },
  exists: { min: 1, max: 1, tags: { ...MIME_TAGS } },
  size: { min: 1, max: 1, tags: { over: 'none', under: 'none' } },
  header: { min: 2, max: 2, tags: { ...MATCH_TAGS, ...INDEX_TAGS, ...MIME_TAGS, ...MIME_OPTION_TAGS } },
  address: { min: 2, max: 2, tags: { ...MATCH_TAGS, ...ADDR_TAGS, ...INDEX_TAGS, ...MIME_TAGS } },
  date: { ext: 'date', min: 3, max: 3, tags: { ...MATCH_TAGS, ...INDEX_TAGS, zone: 'str', originalzone: 'none' } },
  currentdate: { ext: 'date', min: 2, max: 2, tags: { ...MATCH_TAGS, zone: 'str' } },
  envelope: { ext: 'envelope', min: 2, max: 2, tags: { ...MATCH_TAGS, ...ADDR_TAGS } },
  string: { ext: 'variables', min: 2, max: 2, tags: { ...MATCH_TAGS } },
  hasflag: { ext: 'imap4flags', min: 1, max: 2, tags: { ...MATCH_TAGS } },
  mailboxexists: { ext: 'mailbox', min: 1, max: 1, tags: {} },
  body: { ext: 'body', min: 1, max: 1, tags: { ...MATCH_TAGS, raw: 'none', text: 'none', content: 'strlist' } },
  environment: { ext: 'environment', min: 2, max: 2, tags: { ...MATCH_TAGS } },
  ihave: { ext: 'ihave', min: 1, max: 1, tags: {} },
  ...notifyTests(MATCH_TAGS),
};

/**
 * RFC 5463 4: ihave must not enable extensions that change how a script's
 * strings are read; Pigeonhole's tst-ihave.c makes the test false for these.
 */
export const IHAVE_NEVER = ['variables', 'encoded-character'];

/** An `include` of the script: what deliver.ts must find before the script may run (Pigeonhole checks at compile time). */
export interface IncludeRef { name: string; global: boolean; optional: boolean; line: number }
export interface CompiledScript { name: string; commands: Command[]; extensions: Set<string>; includes: IncludeRef[] }

export class SieveCompileError extends Error {
  /** `parse` (grammar) or `validation` (commands/arguments), as Pigeonhole's summary line says. */
  constructor(readonly errors: string[], readonly kind: 'parse' | 'validation' = 'validation') { super(errors.join('\n')); }
}

/**
 * Compile or throw SieveCompileError with Pigeonhole-style lines
 * "NAME: line N: error: TEXT." (no "NAME: " when name is empty, as in
 * ManageSieve's CHECKSCRIPT).
 */
export function compileScript(src: string, name = 'script', opts: CompileOptions = {}): CompiledScript {
  const on = opts.enabled ?? CORE_EXTENSIONS;
  const allowed = [...SUPPORTED_EXTENSIONS.filter((e) => on.includes(e)), ...(opts.extensions ?? []).filter((e) => CONTEXT_EXTENSIONS.includes(e))];
  const pre = name ? `${name}: ` : '';
  let commands: Command[];
  try {
    commands = parseScript(src);
  } catch (e) {
    if (e instanceof SieveSyntaxError) throw new SieveCompileError([`${pre}line ${e.line}: error: ${e.message}.`], 'parse');
    if (e instanceof SieveSyntaxErrors) throw new SieveCompileError(e.list.map((x) => `${pre}line ${x.line}: error: ${x.message}.`), 'parse');
    throw e;
  }
  const errors: string[] = [];
  const reported = new Set<string>();
  const ext = new Set<string>();
  const includes: IncludeRef[] = [];
  const err = (line: number, msg: string) => errors.push(`${pre}line ${line}: error: ${msg}.`);

  function checkArgs(node: Test, spec: Spec, kind: 'command' | 'test') {
    let positional = 0;
    const args = node.args;
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a.kind !== 'tag') { positional++; continue; }
      const t = spec.tags[a.name];
      const tagExt = typeof t === 'object' ? t.ext : undefined;
      if (!t || (tagExt && !ext.has(tagExt))) {
        const key = `tag:${node.name}:${a.name}`;
        if (!reported.has(key)) { reported.add(key); err(a.line, `unknown tagged argument ':${a.name}' for the ${node.name} ${kind} (reported only once at first occurrence)`); }
        // Pigeonhole's validator gives up on this command's arguments here (no positional count error follows)
        return;
      }
      if (tagExt === 'mime' && a.name !== 'mime' && !checkMimeOption(node, a, kind)) return;
      const want = typeof t === 'object' ? t.arg : t;
      if (a.name === 'first' && node.name === 'extracttext' && args[i + 1]?.kind !== 'num') {
        err(a.line, `the :first tag for the extracttext command requires a number as parameter, but ${args[i + 1] ? describeArg(args[i + 1]) : 'none'} was found`);
        return;
      }
      if (want !== 'none') {
        const v = args[i + 1];
        const ok = v && (want === 'num' ? v.kind === 'num' : v.kind === 'str' && (want === 'strlist' || !v.list));
        if (!ok && typeof t === 'object' && t.parameter) {
          const type = want === 'num' ? 'a number' : want === 'str' ? 'a string' : 'a string list';
          if (t.parameter === 'importance') err((v ?? a).line, `the :${a.name} tag for the ${node.name} ${kind} requires a string parameter, but ${v ? describeArg(v) : 'none'} was found`);
          else err((v ?? a).line, `the :${a.name} tag for the ${node.name} ${kind} requires ${type} as parameter, but ${v ? `${describeArg(v)} was found` : 'no parameters were found'}`);
          return;
        }
        if (!ok) { err(a.line, `the :${a.name} tag for the ${node.name} ${kind} requires one ${want === 'num' ? 'number' : want === 'str' ? 'string' : 'string list'} argument, but ${v ? describeArg(v) : 'none'} was found`); continue; }
        i++;
      }
      if (a.name === 'comparator') {
        const c = (args[i] as Extract<Arg, { kind: 'str' }>).values[0];
        const known = c === 'i;octet' || c === 'i;ascii-casemap' || (c === 'i;ascii-numeric' && ext.has('comparator-i;ascii-numeric'));
        if (!known) err(a.line, `unknown comparator '${c}'`);
      }
    }
    checkIndexAndZone(node, kind);
    checkRegex(node, kind);
    if (positional < spec.min || positional > spec.max) {
      const n = positional < spec.min ? spec.min : spec.max;
      err(node.line, `the ${node.name} ${kind} requires ${n} positional argument(s), but ${positional} is/are specified`);
      return;
    }
    if (spec.pos) {
      const pos = args.slice(args.length - positional);
      for (let k = 0; k < spec.pos.length; k++) {
        const [what, type] = spec.pos[k];
        const a = pos[k];
        if (a.kind === 'str' && (type === 'strlist' || !a.list)) continue;
        err(a.line, `the ${node.name} ${kind} expects a ${type === 'str' ? 'string' : 'string list'} as argument ${k + 1} (${what}), but ${describeArg(a)} was found`);
        return;
      }
    }
    checkExtensionCommand(node, { ext, err, literal: (a): a is Extract<Arg, { kind: 'str' }> => a?.kind === 'str' && !a.list && !(ext.has('variables') && hasVariableRef(a.values[0])) });
  }

  /**
   * tag-mime.c: an option tag needs :mime somewhere in the command, and only
   * one of :type/:subtype/:contenttype/:param may be given. False ends the
   * command's argument checks, as Pigeonhole's failing tag validation does.
   */
  function checkMimeOption(node: Test, a: Extract<Arg, { kind: 'tag' }>, kind: 'command' | 'test'): boolean {
    if (!node.args.some((x) => x.kind === 'tag' && x.name === 'mime')) {
      err(a.line, `the :${a.name} tag for the ${node.name} ${kind} cannot be specified without the :mime tag`);
      return false;
    }
    if (a.name === 'anychild') return true;
    const opts = node.args.filter((x) => x.kind === 'tag' && x.name in MIME_OPTION_TAGS);
    if (opts[0] !== a) {
      err(a.line, `the :type, :subtype, :contenttype, and :param arguments for the ${node.name} ${kind} are mutually exclusive, but more than one was specified`);
      return false;
    }
    return true;
  }

  /**
   * mcht-regex.c: :regex takes only i;octet and i;ascii-casemap, and every
   * literal key must compile (regcomp's error, the first bad key only);
   * keys with variables are compiled when the script runs.
   */
  function checkRegex(node: Test, kind: 'command' | 'test') {
    const tag = node.args.find((a): a is Extract<Arg, { kind: 'tag' }> => a.kind === 'tag' && a.name === 'regex');
    if (!tag || !ext.has('regex') || kind !== 'test') return;
    const ci = node.args.findIndex((a) => a.kind === 'tag' && a.name === 'comparator');
    const cmpArg = ci >= 0 ? node.args[ci + 1] : undefined;
    const cmp = cmpArg?.kind === 'str' ? cmpArg.values[0] : 'i;ascii-casemap';
    if (cmp !== 'i;octet' && cmp !== 'i;ascii-casemap') { err(tag.line, 'regex match type only supports i;octet and i;ascii-casemap comparators'); return; }
    const keys = [...node.args].reverse().find((a, i, all): a is Extract<Arg, { kind: 'str' }> => a.kind === 'str' && all[i + 1]?.kind !== 'tag');
    for (const k of keys?.values ?? []) {
      if (ext.has('variables') && hasVariableRef(k)) continue;
      try { validateRegex(decodeIfEncoded(k), cmp === 'i;ascii-casemap'); } catch (e) {
        if (!(e instanceof RegexSyntaxError)) throw e;
        err(keys!.line, regexErrorText(decodeIfEncoded(k), e));
        return;
      }
    }
  }
  const decodeIfEncoded = (k: string) => (ext.has('encoded-character') ? decodeEncodedCharacters(k) : k);

  /** ext-index / ext-date validation (Pigeonhole's texts): :index > 0, :last needs :index, one zone tag. */
  function checkIndexAndZone(node: Test, kind: 'command' | 'test') {
    const tags = node.args.filter((a): a is Extract<Arg, { kind: 'tag' }> => a.kind === 'tag');
    const idx = node.args.findIndex((a) => a.kind === 'tag' && a.name === 'index');
    // (deleteheader has its own :index/:last, no zero check)
    const own = node.name === 'deleteheader';
    if (idx >= 0 && ext.has('index') && !own) {
      const v = node.args[idx + 1];
      if (v?.kind === 'num' && v.value === 0) err(node.args[idx].line, `the :index tag for the ${node.name} ${kind} cannot be zero`);
    }
    const last = tags.find((a) => a.name === 'last');
    // (cmd-deleteheader.c reports it, yet its validation goes on and the script compiles: not an error here)
    if (last && ext.has('index') && !own && idx < 0) err(last.line, `the :last tag for the ${node.name} ${kind} cannot be specified without the :index tag`);
    if (node.name === 'date' || node.name === 'currentdate') {
      const zones = tags.filter((a) => a.name === 'zone' || a.name === 'originalzone');
      if (zones.length > 1) err(zones[1].line, `encountered duplicate :${zones[1].name} argument for the ${node.name} ${kind}`);
    }
  }

  /*
   * Constant tests, as Pigeonhole's validate_const: 1 always true, 0 always
   * false, -1 decided when the script runs. A block behind a constant false
   * test is not validated (that is what lets `if ihave "x" { xcommand; }`
   * compile where x is unknown), and allof/anyof stop validating at the
   * first test that decides them.
   */

  /** Validates the sub-tests; the owner's constant value (if/elsif: its test's). */
  function checkTests(tests: Test[], owner: Test, kind: 'command' | 'test', spec: Spec): number {
    if (spec.test === 'one' && tests.length !== 1) err(owner.line, `the ${owner.name} ${kind} requires one test argument`);
    if (!spec.test && tests.length) err(owner.line, kind === 'test' ? `the ${owner.name} test accepts no sub-tests, but tests are specified` : `the ${owner.name} command accepts no test argument`);
    let value = -2;
    for (const t of tests) {
      const v = checkTest(t);
      if ((owner.name === 'allof' && v === 0) || (owner.name === 'anyof' && v === 1)) return v;
      if (value !== -1) value = v;
    }
    if (owner.name === 'not') return value < 0 ? -1 : 1 - value;
    return value === -2 ? -1 : value;
  }

  function checkTest(t: Test): number {
    const spec = TESTS[t.name];
    if (!spec || !specOn(spec, ext)) {
      if (!reported.has('test:' + t.name)) { reported.add('test:' + t.name); err(t.line, `unknown test '${t.name}' (only reported once at first occurrence)`); }
      return -1;
    }
    checkArgs(t, spec, 'test');
    const sub = checkTests(t.tests, t, 'test', spec);
    if (t.name === 'true') return 1;
    if (t.name === 'false') return 0;
    if (t.name === 'ihave') return checkIhave(t);
    return spec.test ? sub : -1;
  }

  /**
   * tst-ihave.c: true only when every named extension is one this context
   * allows (and none is in IHAVE_NEVER); then they are loaded for the rest of
   * the script, as a `require` would, so the guarded block may use them.
   * Only false is constant: a true ihave is asked again when the script runs
   * (so an `else` behind it is still validated, as in Pigeonhole).
   */
  function checkIhave(t: Test): number {
    const a = t.args.find((x): x is Extract<Arg, { kind: 'str' }> => x.kind === 'str');
    if (!a) return -1;
    if (!a.values.every((v) => allowed.includes(v)) || a.values.some((v) => IHAVE_NEVER.includes(v))) return 0;
    for (const v of a.values) enable(v);
    return -1;
  }
  function enable(v: string) {
    ext.add(v);
    // vnd.dovecot.environment builds on environment (Pigeonhole loads it along)
    if (v === 'vnd.dovecot.environment') ext.add('environment');
  }

  /** sieve-extprograms-common.c: a literal program name without '/' or control characters, arguments without CR/LF. */
  function checkProgram(c: Command) {
    const pos = c.args.filter((a): a is Extract<Arg, { kind: 'str' }> => a.kind === 'str');
    const prog = pos[0];
    if (!prog || prog.list) return;
    const n = prog.values[0];
    if (ext.has('variables') && hasVariableRef(n)) { err(prog.line, 'the pipe command requires a constant string for its program-name argument'); return; }
    if (!programNameValid(n)) err(prog.line, `pipe command: invalid program name '${n.slice(0, 80)}'`);
    for (const a of pos[1]?.values ?? []) {
      if (a.length > 1024 || /[\r\n]/.test(a)) { err(pos[1].line, `pipe command: specified external program argument \`${a.slice(0, 128)}' is invalid`); break; }
    }
  }

  /**
   * cmd-redirect.c / cmd-vacation.c: a literal redirect address or vacation
   * :from must be one valid mailbox (sieve-address.c); values with variables
   * are checked when the script runs (interpreter.ts).
   */
  function checkAddresses(c: Command) {
    const literal = (a: Arg | undefined): a is Extract<Arg, { kind: 'str' }> =>
      a?.kind === 'str' && !a.list && !(ext.has('variables') && hasVariableRef(a.values[0]));
    const value = (a: Extract<Arg, { kind: 'str' }>) => (ext.has('encoded-character') ? decodeEncodedCharacters(a.values[0]) : a.values[0]);
    if (c.name === 'redirect') {
      const a = c.args.find((x) => x.kind === 'str');
      if (!literal(a)) return;
      const e = sieveAddressError(value(a));
      if (e) err(a.line, `specified redirect address '${sanitize(value(a), 128)}' is invalid: ${e}`);
      return;
    }
    const i = c.args.findIndex((x) => x.kind === 'tag' && x.name === 'from');
    const a = i >= 0 ? c.args[i + 1] : undefined;
    if (!literal(a)) return;
    const e = sieveAddressError(value(a));
    if (e) err(a.line, `specified :from address '${sanitize(value(a), 128)}' is invalid for vacation action: ${e}`);
  }

  /** cmd-addheader.c / cmd-deleteheader.c: literal field names and values checked now (values with variables when the script runs). */
  function checkEditheader(c: Command) {
    const literal = (a: Arg | undefined): a is Extract<Arg, { kind: 'str' }> =>
      a?.kind === 'str' && !a.list && !(ext.has('variables') && hasVariableRef(a.values[0]));
    const pos = c.args.filter((a, i) => a.kind !== 'tag' && !(i > 0 && c.args[i - 1].kind === 'tag' && (c.args[i - 1] as { name: string }).name in
      { index: 1, comparator: 1, value: 1, count: 1 }));
    if (c.name === 'addheader') {
      const [n, v] = pos;
      if (literal(n) && !fieldNameValid(decodeIfEncoded(n.values[0]))) { err(n.line, `addheader command: specified field name \`${sanitize(decodeIfEncoded(n.values[0]), 80)}' is invalid`); return; }
      if (!literal(v)) return;
      const value = decodeIfEncoded(v.values[0]);
      if (value.includes('\0')) { err(v.line, `addheader command: specified value \`${sanitize(value, 80)}' is invalid (contains NUL character)`); return; }
      const size = Buffer.byteLength(value);
      if (size > editheaderConfig(opts.settings).maxHeaderSize) err(v.line, `addheader command: specified header value \`${sanitize(value, 80)}' is too large (${size} bytes)`);
      return;
    }
    if (!pos.length) { err(c.line, 'the deleteheader command expects at least one positional argument, but none was found'); return; }
    const names = ['field name', 'value patterns'];
    for (let k = 0; k < Math.min(2, pos.length); k++) {
      if (pos[k].kind === 'str') continue;
      err(pos[k].line, `the deleteheader command expects a string list as argument ${k + 1} (${names[k]}), but ${describeArg(pos[k])} was found`);
      return;
    }
    const n = pos[0];
    if (literal(n) && !fieldNameValid(decodeIfEncoded(n.values[0]))) err(n.line, `deleteheader command:specified field name \`${sanitize(decodeIfEncoded(n.values[0]), 80)}' is invalid`);
  }

  /** ext-include: a literal script name without '/' (sieve_script_name_is_valid), remembered for the existence check. */
  function checkInclude(c: Command) {
    const a = c.args.find((x): x is Extract<Arg, { kind: 'str' }> => x.kind === 'str');
    if (!a || a.list) return;
    const n = a.values[0];
    if (!n || n.includes('/') || /[\x00-\x1f\x7f]/.test(n) || [...n].length > 255) { err(a.line, `include: invalid script name '${n}'`); return; }
    const tag = (t: string) => c.args.some((x) => x.kind === 'tag' && x.name === t);
    includes.push({ name: n, global: tag('global'), optional: tag('optional'), line: c.line });
  }

  /** Enclosing foreverypart loops, innermost last: their :name (null without). */
  const loops: Array<string | null> = [];
  /** Lines of the require arguments, for errors Pigeonhole reports there. */
  const requiredAt = new Map<string, number>();
  /** An extension's own check failed (sieve-validator.c's fatal): the command at hand is only looked up, then validation ends. */
  let fatal = false;

  /** ext-extracttext.c, when the first command after the requires is validated: it needs variables and foreverypart. */
  function checkRequired() {
    const at = requiredAt.get('extracttext');
    if (at === undefined) return;
    const missing = !ext.has('variables') ? 'variables' : !ext.has('foreverypart') ? 'foreverypart' : null;
    if (!missing) return;
    err(at, `extracttext extension cannot be used without ${missing} extension`);
    fatal = true;
  }

  /** cmd-foreverypart.c, cmd-break.c, cmd-extracttext.c: loop nesting and placement. */
  function checkLoopCommand(c: Command) {
    const nameArg = (() => { const i = c.args.findIndex((x) => x.kind === 'tag' && x.name === 'name'); const v = i >= 0 ? c.args[i + 1] : undefined; return v?.kind === 'str' ? v.values[0] : null; })();
    if (c.name === 'foreverypart' && loops.length + 1 > MAX_LOOP_DEPTH) err(c.line, `the nested foreverypart loop exceeds the nesting limit (<= ${MAX_LOOP_DEPTH} levels)`);
    if (c.name === 'break' && !loops.some((l) => nameArg === null || l === nameArg)) {
      err(c.line, nameArg === null ? 'the break command is not placed inside a foreverypart loop' : `the break command is not placed inside a foreverypart loop named \`${nameArg}'`);
    }
    if (c.name === 'extracttext' && !loops.length) err(c.line, 'the extracttext command is not placed inside a foreverypart loop');
    return nameArg;
  }

  function checkBlock(cmds: Command[], top: boolean) {
    let prev = '';
    /** An earlier if/elsif of this chain is constant true: the rest of the chain is never run nor validated (cmd-if.c). */
    let chainDecided = false;
    let requireAllowed = top;
    for (const c of cmds) {
      if (c.name === 'require') {
        if (!requireAllowed) err(c.line, 'require commands can only be placed at top level at the beginning of the file');
        else for (const a of c.args) {
          if (a.kind !== 'str') continue;
          for (const [k, v] of a.values.entries()) {
            const conflict = allowed.includes(v) ? requireConflict(v, ext) : null;
            if (conflict) err(a.line, conflict);
            else if (allowed.includes(v)) { enable(v); if (!requiredAt.has(v)) requiredAt.set(v, a.itemLines?.[k] ?? a.line); }
            else err(c.line, `require command: unknown Sieve capability \`${v}'`);
          }
        }
        prev = c.name;
        continue;
      }
      if (requireAllowed) checkRequired();
      requireAllowed = false;
      const spec = COMMANDS[c.name];
      if (!spec || !specOn(spec, ext)) {
        if (!reported.has('cmd:' + c.name)) { reported.add('cmd:' + c.name); err(c.line, `unknown command '${c.name}' (only reported once at first occurrence)`); }
        if (fatal) break;
        prev = c.name; continue;
      }
      if (fatal) break;
      if ((c.name === 'elsif' || c.name === 'else') && prev !== 'if' && prev !== 'elsif') err(c.line, `the ${c.name} command must follow an if or elseif command`);
      const before = errors.length;
      checkArgs(c, spec, 'command');
      if ((c.name === 'addheader' || c.name === 'deleteheader') && errors.length === before) checkEditheader(c);
      if (c.name === 'pipe') checkProgram(c);
      if (c.name === 'redirect' || c.name === 'vacation') checkAddresses(c);
      if (c.name === 'include') checkInclude(c);
      const loopName = c.name === 'foreverypart' || c.name === 'break' || c.name === 'extracttext' ? checkLoopCommand(c) : undefined;
      if (c.name === 'if') chainDecided = false;
      const skipped = (c.name === 'elsif' || c.name === 'else') && chainDecided;
      const value = skipped ? 0 : checkTests(c.tests, c, 'command', spec);
      if (value === 1 && (c.name === 'if' || c.name === 'elsif')) chainDecided = true;
      if (spec.block && !c.block) err(c.line, `the ${c.name} command requires a command block, but it is missing`);
      if (!spec.block && c.block) err(c.line, `the ${c.name} command does not accept a command block, but one was found`);
      if (c.block && value !== 0) {
        if (c.name === 'foreverypart') loops.push(loopName ?? null);
        try { checkBlock(c.block, false); } finally { if (c.name === 'foreverypart') loops.pop(); }
      }
      prev = c.name;
    }
  }

  checkBlock(commands, true);
  if (errors.length) throw new SieveCompileError(errors);
  if (ext.has('encoded-character')) walkStrings(commands, decodeEncodedCharacters);
  return { name, commands, extensions: ext, includes };
}

/**
 * Does the string hold a `${...}` (what /\$\{[^}]*\}/ tests)? By index:
 * that regex takes quadratic time on a long run of "${" in a user's script,
 * which ManageSieve compiles in the master.
 */
export function hasVariableRef(s: string): boolean {
  const open = s.indexOf('${');
  return open >= 0 && s.indexOf('}', open + 2) >= 0;
}

/** sieve_extprogram_name_is_valid: 1-128 characters, none of them '/', controls, DEL, U+00FF or the Unicode line/paragraph separators. */
export function programNameValid(name: string): boolean {
  const cps = [...name].map((c) => c.codePointAt(0)!);
  if (!cps.length || cps.length > 128) return false;
  return !cps.some((c) => c <= 0x1f || c === 0x2f || c === 0x7f || (c >= 0x80 && c <= 0x9f) || c === 0xff || c === 0x2028 || c === 0x2029);
}

function describeArg(a: Arg): string {
  return a.kind === 'num' ? 'a number' : a.kind === 'tag' ? `a tag ':${a.name}'` : a.list ? 'a string list' : 'a string';
}

function walkStrings(cmds: Test[], fn: (s: string) => string): void {
  for (const c of cmds) {
    for (const a of c.args) if (a.kind === 'str') a.values = a.values.map(fn);
    walkStrings(c.tests, fn);
    if ((c as Command).block) walkStrings((c as Command).block!, fn);
  }
}

/** RFC 5228 2.4.2.4: ${hex: 41 42} and ${unicode: 263a}; malformed sequences stay as written. */
export function decodeEncodedCharacters(s: string): string {
  return s.replace(/\$\{(hex|unicode):([\s0-9a-fA-F]*)\}/gi, (m, kind: string, body: string) => {
    const items = body.trim().split(/\s+/).filter(Boolean);
    if (!items.length) return '';
    if (kind.toLowerCase() === 'hex') return Buffer.from(items.map((h) => parseInt(h, 16))).toString('utf8');
    const cps = items.map((h) => parseInt(h, 16));
    if (cps.some((c) => c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))) return m;
    return String.fromCodePoint(...cps);
  });
}
