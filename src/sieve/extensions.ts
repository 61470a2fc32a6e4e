/**
 * Which Sieve extensions are on, as Pigeonhole 0.5 decides it
 * (sieve-extensions.c): the core set is on by default, the extra and
 * deprecated ones (spamtest, spamtestplus, virustest,
 * vnd.dovecot.duplicate, ...) only when `sieve_extensions` names them;
 * `sieve_extensions` either replaces the set (plain names) or changes it
 * (+name / -name); `sieve_global_extensions` are for administrator scripts
 * only and are not announced. ManageSieve's SIEVE capability
 * (managesieve_sieve_capability) lists the enabled ones in Pigeonhole's
 * registration order; NOTIFY lists the notify methods when enotify is on.
 */
import { NOTIFY_METHODS } from './notify.js';

/** Pigeonhole's core extensions, in the order its registry lists them (include registers variables first). */
export const CORE_EXTENSIONS = [
  'fileinto', 'reject', 'envelope', 'encoded-character', 'vacation', 'subaddress', 'comparator-i;ascii-numeric',
  'relational', 'regex', 'imap4flags', 'copy', 'include', 'variables', 'body', 'enotify', 'environment', 'mailbox',
  'date', 'index', 'ihave', 'duplicate', 'mime', 'foreverypart', 'extracttext',
];
/** Registered but off by default: sieve_extra_extensions then sieve_deprecated_extensions. */
export const OPTIONAL_EXTENSIONS = [
  'vacation-seconds', 'spamtest', 'spamtestplus', 'virustest', 'editheader', 'mboxmetadata', 'servermetadata',
  'special-use', 'vnd.dovecot.debug', 'vnd.dovecot.environment', 'vnd.dovecot.report',
  'imapflags', 'notify', 'vnd.dovecot.duplicate',
];
const ALL = [...CORE_EXTENSIONS, ...OPTIONAL_EXTENSIONS];

/** sieve_extensions_set_string: the set after applying one setting's value to `start`. */
function apply(value: string | undefined, start: Set<string>): Set<string> {
  if (value === undefined) return start;
  const items = value.split(/[ \t]+/).filter(Boolean);
  const relative = items.some((x) => x[0] === '+' || x[0] === '-');
  const on = relative ? new Set(start) : new Set<string>();
  for (const item of items) {
    const name = item.replace(/^[+-]/, '');
    if (!ALL.includes(name)) continue; // Pigeonhole: "ignored unknown extension" warning
    if (item[0] === '-') on.delete(name); else on.add(name);
  }
  return on;
}

export interface ExtensionSwitches {
  /** Extensions every script may require. */
  enabled: string[];
  /** sieve_global_extensions: only administrator (sieve_before/sieve_after/global) scripts may require these. */
  global: string[];
}

export function extensionSwitches(plugin: Record<string, string>): ExtensionSwitches {
  const enabled = apply(plugin.sieve_extensions, new Set(CORE_EXTENSIONS));
  const global = apply(plugin.sieve_global_extensions, new Set());
  return { enabled: ALL.filter((e) => enabled.has(e) && !global.has(e)), global: ALL.filter((e) => global.has(e)) };
}

/** managesieve_sieve_capability: the enabled, non-global extensions Sealmail implements, in Pigeonhole's order. */
export function sieveCapability(plugin: Record<string, string>, implemented: readonly string[]): string {
  return extensionSwitches(plugin).enabled.filter((e) => implemented.includes(e)).join(' ');
}

/** managesieve_notify_capability: the notify methods, or undefined when enotify is off (no NOTIFY line then). */
export function notifyCapability(plugin: Record<string, string>, implemented: readonly string[]): string | undefined {
  return extensionSwitches(plugin).enabled.includes('enotify') && implemented.includes('enotify') ? NOTIFY_METHODS.join(' ') : undefined;
}
