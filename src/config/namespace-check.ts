/**
 * Dovecot 2.3's namespaces_check (lib-storage/mail-namespace.c): a set of
 * private namespaces Dovecot refuses every login with ("namespace
 * configuration error: …"). Used at start (support-report.ts warns) and
 * when a user's store is built (the mail can't be opened, as in Dovecot).
 * Namespaces are given in Dovecot's order (shortest prefix first), with
 * its autocreated prefix="" one when none has an empty prefix.
 */
/** What the check needs of a namespace: `sep` is the one clients see (unset: the layout's). */
export interface CheckedNamespace { prefix: string; sep: string; inbox: boolean; hidden: boolean; list: 'yes' | 'no' | 'children'; subscriptions: boolean }

/**
 * namespaces_check (mail-namespace.c): what makes Dovecot refuse every
 * login with "namespace configuration error: …". Null when the set is fine.
 */
export function namespaceConfigError(all: CheckedNamespace[]): string | null {
  let inbox = false;
  let listYes = false;
  let listSep = '';
  for (const [i, ns] of all.entries()) {
    if (all.slice(i + 1).some((n) => n.prefix === ns.prefix)) return `Duplicate namespace prefix: "${ns.prefix}"`;
    if (ns.inbox) { if (inbox) return 'There can be only one namespace with inbox=yes'; inbox = true; }
    if (ns.list !== 'no') {
      if (ns.prefix !== '' && !ns.prefix.endsWith(ns.sep)) return `list=yes requires prefix=${ns.prefix} to end with separator ${ns.sep}`;
      if (ns.prefix !== '' && ns.prefix.startsWith(ns.sep)) return `list=yes requires prefix=${ns.prefix} not to start with separator`;
      if (ns.list === 'yes') listYes = true;
      if (listSep === '') listSep = ns.sep;
      else if (listSep !== ns.sep) return 'All list=yes namespaces must use the same separator';
    }
  }
  if (!inbox) return 'inbox=yes namespace missing';
  if (!listYes) return 'list=yes namespace missing';
  if (!all.some((n) => !n.hidden)) return 'hidden=no namespace missing';
  if (!all.some((n) => n.subscriptions)) return 'subscriptions=yes namespace missing';
  return null;
}

