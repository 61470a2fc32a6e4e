/**
 * RFC 5183 `environment` items as Pigeonhole 0.5.19 gives them
 * (ext-environment-common.c core items, sieve.c sieve_init's domain):
 * `domain`, `host`, `location`, `phase`, `name` ("Pigeonhole Sieve") and
 * `version` ("0.5.19"). No `remote-host`/`remote-ip`: Pigeonhole registers
 * only these six core items, so a test of any other name is false.
 * Where it runs decides location/phase: LDA/LMTP delivery is "MDA"/"during"
 * (lda-sieve-plugin.c), IMAPSieve and sieve-test "MS"/"post".
 */

export interface EnvironmentContext {
  username: string;
  /** The `hostname` setting, else the host's name (Dovecot: my_hostdomain()). */
  hostname: string;
  location: 'MDA' | 'MTA' | 'MS';
  phase: 'pre' | 'during' | 'post';
}

/**
 * sieve_init: the domain is the username's part after '@'; without one, the
 * hostname after its first '.' when that rest still holds a '.'
 * ("mail.example.com" -> "example.com"); otherwise the bare hostname.
 */
export function environmentDomain(username: string, hostname: string): string {
  const at = username.indexOf('@');
  if (at >= 0 && at + 1 < username.length) return username.slice(at + 1);
  const dot = hostname.indexOf('.');
  const rest = dot < 0 ? '' : hostname.slice(dot + 1);
  return rest && rest.includes('.') ? rest : hostname;
}

export function environmentItems(ctx: EnvironmentContext): Record<string, string> {
  const items: Record<string, string> = {
    domain: environmentDomain(ctx.username, ctx.hostname),
    location: ctx.location,
    phase: ctx.phase,
    name: 'Pigeonhole Sieve',
    version: '0.5.19',
  };
  // p_strdup_empty: an empty hostname is no value (the test is false)
  if (ctx.hostname) items.host = ctx.hostname;
  return items;
}
