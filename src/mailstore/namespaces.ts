/**
 * A user's private namespaces as Dovecot 2.3 sets them up
 * (lib-storage/mail-namespace.c): each `namespace` section has a prefix, a
 * separator (unset: the layout's, Maildir++ '.' and fs '/'), inbox, hidden,
 * list (yes/no/children), subscriptions and its own `location` (unset:
 * mail_location). The store maps a mailbox name as clients see it (the
 * "vname") to a namespace and the name inside it; protocols never split
 * names themselves. Namespaces are kept in Dovecot's order (shortest prefix
 * first, mail_user_add_namespace), and without a prefix="" one Dovecot adds
 * an unusable hidden one that catches names no prefix matches.
 */
import { MailStoreError } from './errors.js';
import { parseMailLocation, type MaildirLocation } from './maildir/location.js';
import { namespaceConfigError } from '../config/namespace-check.js';

export interface NamespaceOptions {
  name: string;
  prefix: string;
  /** '' = the layout's own. */
  separator: string;
  inbox: boolean;
  hidden: boolean;
  list: 'yes' | 'no' | 'children';
  subscriptions: boolean;
  /** '' = mail_location. */
  location: string;
  /** `order`: NAMESPACE lists by it, then in Dovecot's namespace order. */
  order?: number;
}

export interface Namespace extends NamespaceOptions {
  /** The separator clients see. */
  sep: string;
  loc: MaildirLocation;
  /** Dovecot's autocreated prefix="" namespace (LAYOUT=none): nothing can be opened there. */
  unusable: boolean;
}

/** Dovecot's namespace when the configuration has none (mail_namespaces_init_location). */
export const DEFAULT_NAMESPACE: NamespaceOptions = { name: '', prefix: '', separator: '', inbox: true, hidden: false, list: 'yes', subscriptions: true, location: '' };

/** Builds the namespaces; a set Dovecot would refuse fails the same way (the user's mail can't be opened). */
export function buildNamespaces(specs: NamespaceOptions[], mailLocation: string, home?: string): Namespace[] {
  const out: Namespace[] = specs.map((s) => {
    const loc = parseMailLocation(s.location || mailLocation, home, s.separator);
    return { ...s, sep: loc.sep, loc, unusable: false };
  });
  if (!out.some((n) => n.prefix === '')) {
    const loc = parseMailLocation(mailLocation, home, '');
    out.push({ name: '', prefix: '', separator: '', inbox: false, hidden: true, list: 'no', subscriptions: false, location: '', sep: loc.sep, loc, unusable: true });
  }
  // stable: equal prefix lengths keep the configuration's order
  const sorted = out.map((n, i) => ({ n, i })).sort((a, b) => a.n.prefix.length - b.n.prefix.length || a.i - b.i).map((x) => x.n);
  const error = namespaceConfigError(sorted);
  if (error) throw new MailStoreError('IO', `namespace configuration error: ${error}`);
  return sorted;
}

const isInboxName = (s: string) => s.toUpperCase() === 'INBOX';

/** mail_namespace_is_usable_prefix. */
function usablePrefix(ns: Namespace, vname: string, inbox: boolean): boolean {
  const p = ns.prefix;
  if (vname.startsWith(p)) return true;
  if (inbox && p.startsWith('INBOX') && vname.slice(5, p.length) === p.slice(5)) return true;
  return p !== '' && vname === p.slice(0, -1) && p.endsWith(ns.sep);
}

/**
 * mail_namespace_find_mask: INBOX goes to the inbox=yes namespace; any
 * other name to the longest prefix it begins with (or is, without the
 * trailing separator). `want`: only namespaces it accepts count.
 */
export function findNamespace(all: Namespace[], vname: string, want: (n: Namespace) => boolean = () => true): Namespace | null {
  if (isInboxName(vname)) {
    let best: Namespace | null = null;
    for (const n of all) {
      if (n.inbox && want(n)) return n;
      if (n.prefix === '') best = n;
    }
    return best;
  }
  const inbox = vname.slice(0, 5).toUpperCase() === 'INBOX';
  let best: Namespace | null = null;
  for (const n of all) if ((!best || n.prefix.length >= best.prefix.length) && want(n) && usablePrefix(n, vname, inbox)) best = n;
  return best;
}

/** The name inside its namespace: the prefix off ('' for the prefix itself), INBOX as INBOX. */
export function innerName(ns: Namespace, vname: string): string {
  if (ns.inbox && isInboxName(vname)) return 'INBOX';
  if (ns.prefix === '') return vname;
  if (vname.length < ns.prefix.length) return '';
  return vname.slice(ns.prefix.length);
}

/** The name clients see for a name inside the namespace. */
export function outerName(ns: Namespace, name: string): string {
  if (ns.inbox && isInboxName(name)) return 'INBOX';
  if (name === '') return ns.prefix.slice(0, -1);
  return ns.prefix + name;
}

/** Where a vname lives; refuses names in Dovecot's unusable fallback namespace (the error names the inbox namespace's prefix). */
export function locate(all: Namespace[], vname: string): { ns: Namespace; name: string } {
  const ns = findNamespace(all, vname);
  if (!ns || ns.unusable) throw new MailStoreError('NONAMESPACE', findNamespace(all, 'INBOX')?.prefix ?? '');
  return { ns, name: innerName(ns, vname) };
}
