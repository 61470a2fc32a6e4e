/**
 * Validation of Pigeonhole's enotify (RFC 5435/5436: notify,
 * valid_notify_method, notify_method_capability, set :encodeurl), duplicate
 * (RFC 7352, and the deprecated vnd.dovecot.duplicate) and
 * spamtest/spamtestplus/virustest (RFC 5235) commands: their argument
 * specifications for compile.ts's tables and the checks beyond argument
 * counts, with Pigeonhole's texts (cmd-notify.c, ext-enotify-common.c,
 * tst-duplicate.c, ext-duplicate.c, tst-spamvirustest.c).
 */
import type { Arg, Test } from './parser.js';
import type { Spec } from './compile.js';
import { parseMailto, uriScheme, optionError, NOTIFY_METHODS } from './notify.js';
import { sieveAddressError } from './address.js';
import { sanitize } from './match.js';

/** A tag whose value is checked by sieve_validate_tag_parameter (its "requires a number as parameter" texts). */
const param = (arg: 'str' | 'strlist' | 'num', ext?: string) => ({ arg, ext, parameter: 'tag' as const });

export const NOTIFY_COMMANDS: Record<string, Spec> = {
  // notify [":from" string] [":importance" <"1"/"2"/"3">] [":options" string-list] [":message" string] <method: string>
  notify: {
    ext: 'enotify', min: 1, max: 1, pos: [['method', 'str']],
    tags: { from: param('str'), importance: { arg: 'str', parameter: 'importance' }, options: param('strlist'), message: param('str') },
  },
};

/** The tests, given compile.ts's match-type and comparator tags (a function: compile.ts imports this module). */
export const notifyTests = (MATCH_TAGS: Spec['tags']): Record<string, Spec> => ({
  valid_notify_method: { ext: 'enotify', min: 1, max: 1, tags: {}, pos: [['notification-uris', 'strlist']] },
  notify_method_capability: {
    ext: 'enotify', min: 3, max: 3, tags: { ...MATCH_TAGS },
    pos: [['notification-uri', 'str'], ['notification-capability', 'str'], ['key-list', 'strlist']],
  },
  duplicate: {
    ext: ['duplicate', 'vnd.dovecot.duplicate'], min: 0, max: 0,
    tags: { seconds: param('num'), last: 'none', header: param('str'), handle: param('str'), uniqueid: param('str', 'duplicate'), value: param('str', 'vnd.dovecot.duplicate') },
  },
  spamtest: { ext: ['spamtest', 'spamtestplus'], min: 1, max: 1, tags: { ...MATCH_TAGS, percent: 'none' }, pos: [['value', 'str']] },
  virustest: { ext: 'virustest', min: 1, max: 1, tags: { ...MATCH_TAGS }, pos: [['value', 'str']] },
});

/** The :encodeurl modifier of `set` (enotify registers it with variables). */
export const ENCODEURL_TAG = { encodeurl: { arg: 'none' as const, ext: 'enotify' } };

export interface ExtCheckEnv {
  ext: ReadonlySet<string>;
  err(line: number, msg: string): void;
  /** A string argument that is a literal (no variable reference to expand at run time). */
  literal(a: Arg | undefined): a is Extract<Arg, { kind: 'str' }>;
}

const tagValue = (node: Test, name: string): Arg | undefined => {
  const i = node.args.findIndex((a) => a.kind === 'tag' && a.name === name);
  return i >= 0 ? node.args[i + 1] : undefined;
};

/** ext_enotify_compile_check_arguments: a literal method URI, :from and :options checked now. */
function checkNotify(c: Test, env: ExtCheckEnv): void {
  const method = c.args.at(-1); // the positional argument follows the tags
  if (!env.literal(method)) return;
  const uri = method.values[0];
  const s = uriScheme(uri);
  if (!s) { env.err(method.line, `notify command: invalid scheme part for method URI '${sanitize(uri, 80)}'`); return; }
  if (!NOTIFY_METHODS.includes(s.scheme.toLowerCase())) { env.err(method.line, `notify command: invalid method '${s.scheme}'`); return; }
  let ok = true;
  parseMailto(s.body, { error: (m) => { ok = false; env.err(method.line, `notify command: mailto URI: ${m}`); }, warning: () => undefined });
  if (!ok) return;
  const from = tagValue(c, 'from');
  if (env.literal(from)) {
    const e = sieveAddressError(from.values[0]);
    if (e) { env.err(from.line, `notify command: specified :from address '${sanitize(from.values[0], 128)}' is invalid for the mailto method: ${e}`); return; }
  }
  const options = tagValue(c, 'options');
  if (options?.kind === 'str') {
    for (const o of options.values) {
      // an option with a variable is only checked up to its name, and silently
      if (!env.literal({ ...options, values: [o], list: false })) continue;
      const e = optionError(o);
      if (e) { env.err(options.line, `notify command: ${e}`); return; }
    }
  }
}

/** cmd-notify.c: :importance is "1", "2" or "3". */
function checkImportance(c: Test, env: ExtCheckEnv): boolean {
  const v = tagValue(c, 'importance');
  if (v?.kind === 'str' && !v.list && !/^[1-3]$/.test(v.values[0])) { env.err(v.line, `invalid :importance value for notify command: ${v.values[0]}`); return false; }
  return true;
}

/** tst-duplicate.c: :header and :uniqueid (:value) exclude each other. */
function checkDuplicate(t: Test, env: ExtCheckEnv): void {
  const which = env.ext.has('duplicate') ? 'uniqueid' : 'value';
  let seen = false;
  for (let i = 0; i < t.args.length; i++) {
    const a = t.args[i];
    if (a.kind !== 'tag' || !['header', 'uniqueid', 'value'].includes(a.name)) continue;
    if (seen) { env.err((t.args[i + 1] ?? a).line, `conflicting :header and :${which} arguments specified for the duplicate test`); return; }
    seen = true;
  }
}

/** tst-spamvirustest.c: :percent needs spamtestplus. */
function checkSpamtest(t: Test, env: ExtCheckEnv): void {
  const p = t.args.find((a) => a.kind === 'tag' && a.name === 'percent');
  if (p && !env.ext.has('spamtestplus')) env.err(p.line, 'the spamtest test only accepts the :percent argument when the spamtestplus extension is active');
}

/** The checks after the argument counts. */
export function checkExtensionCommand(node: Test, env: ExtCheckEnv): void {
  switch (node.name) {
    case 'notify': if (checkImportance(node, env)) checkNotify(node, env); break;
    case 'duplicate': checkDuplicate(node, env); break;
    case 'spamtest': checkSpamtest(node, env); break;
  }
}

/** ext-duplicate.c: the deprecated vnd.dovecot.duplicate and duplicate cannot both be required. */
export function requireConflict(name: string, ext: ReadonlySet<string>): string | null {
  if ((name === 'duplicate' && ext.has('vnd.dovecot.duplicate')) || (name === 'vnd.dovecot.duplicate' && ext.has('duplicate')))
    return 'the (deprecated) vnd.dovecot.duplicate extension cannot be used together with the duplicate extension';
  return null;
}
