/**
 * Mailbox and server metadata (RFC 5464, the storage side) in the mail
 * attribute dict, laid out as Dovecot 2.3 does so both servers read what the
 * other wrote: `/private/NAME` of a mailbox is `priv/<mailbox GUID>/NAME`,
 * `/shared/NAME` is `shared/<GUID>/NAME`; server entries live on INBOX under
 * `vendor/vendor.dovecot/pvt/server/`. Entry names arrive validated and
 * lowercased (the protocol layer does that, with Dovecot's texts).
 *
 * What a client never sees or changes: Dovecot's internal attributes
 * (`vendor/vendor.dovecot/pvt/…`: the mail-crypt keys) and Sealmail's own
 * (`vendor/vendor.sealmail/…`: staged and recovery key copies — Dovecot 2.3
 * would show and overwrite those as server entries; Sealmail hides them).
 * Values Dovecot derives from configuration are read-only: a mailbox's
 * `/private/specialuse`, the server's `/shared/comment` and `/shared/admin`.
 * Listing children (DEPTH) works on mailboxes; on the server it yields
 * nothing, exactly as Dovecot 2.3's iteration does.
 */
import type { DovecotConfig } from '../config/settings.js';
import { AttributeDict, ATTR_PVT, attributeDictFile } from '../crypt/attributes.js';
import type { MailStore } from './store.js';
import type { MailUser } from './user-store.js';

const SERVER_PREFIX = `${ATTR_PVT}server/`;

export type MetadataErrorCode = 'INTERNAL' | 'READONLY' | 'NUL';

export class MetadataError extends Error {
  /** READONLY: `key` is the name Dovecot quotes in its error (the server ones with their internal prefix). */
  constructor(readonly code: MetadataErrorCode, readonly key = '') { super(code); }
}

export interface MetadataOptions {
  dictPath: string;
  /** `mail_server_comment`, `mail_server_admin` (empty: none). */
  serverComment?: string;
  serverAdmin?: string;
}

export interface MetadataEntry { entry: string; value: string | null }

/** Depth of a listing: 0 the entry itself, 1 its children too, Infinity all below. */
export type MetadataDepth = 0 | 1 | number;

function isHidden(name: string): boolean {
  return name.startsWith(ATTR_PVT) || name.startsWith('vendor/vendor.sealmail/');
}

function split(entry: string): { scope: 'priv' | 'shared'; name: string } {
  const slash = entry.indexOf('/', 1);
  return { scope: entry.startsWith('/private') ? 'priv' : 'shared', name: slash < 0 ? '' : entry.slice(slash + 1) };
}

export class UserMetadata {
  private readonly dict: AttributeDict;

  constructor(private readonly store: MailStore, private readonly opts: MetadataOptions) {
    this.dict = new AttributeDict(opts.dictPath);
  }

  /** Fails with the store's NONEXISTENT error for a missing mailbox (checked before anything else). */
  async checkMailbox(mailbox: string | null): Promise<void> {
    if (mailbox !== null) await this.store.mailboxGuid(mailbox);
  }

  /** Configuration-derived value of an entry, or undefined when the entry is an ordinary one. */
  private authority(mailbox: string | null, entry: string): { value: string | null; key: string } | undefined {
    if (mailbox === null) {
      if (entry === '/shared/comment') return { value: this.opts.serverComment || null, key: `/shared/${SERVER_PREFIX}comment` };
      if (entry === '/shared/admin') return { value: this.opts.serverAdmin || null, key: `/shared/${SERVER_PREFIX}admin` };
      return undefined;
    }
    if (entry === '/private/specialuse') return { value: this.store.opts.specialUse?.[mailbox] ?? null, key: entry };
    return undefined;
  }

  private async keyOf(mailbox: string | null, entry: string): Promise<string> {
    const guid = await this.store.mailboxGuid(mailbox ?? 'INBOX');
    const { scope, name } = split(entry);
    return `${scope}/${guid}/${mailbox === null ? SERVER_PREFIX : ''}${name}`;
  }

  /**
   * Each entry's value (null: none), then with depth > 0 its children that
   * have values, in dict order. A hidden entry reads as absent.
   */
  async get(mailbox: string | null, entries: string[], depth: MetadataDepth): Promise<MetadataEntry[]> {
    const dict = await this.dict.read();
    const guid = await this.store.mailboxGuid(mailbox ?? 'INBOX');
    const out: MetadataEntry[] = [];
    for (const entry of entries) {
      const { scope, name } = split(entry);
      const auth = this.authority(mailbox, entry);
      const value = auth ? auth.value : isHidden(name) ? null : dict.get(`${scope}/${guid}/${mailbox === null ? SERVER_PREFIX : ''}${name}`) ?? null;
      if (value !== null || depth === 0) out.push({ entry, value });
      if (depth === 0 || mailbox === null) continue; // Dovecot 2.3 lists no server children
      const prefix = `${scope}/${guid}/${name === '' ? '' : `${name}/`}`;
      const special = this.store.opts.specialUse?.[mailbox];
      if (special && entry === '/private') out.push({ entry: '/private/specialuse', value: special });
      for (const [k, v] of dict) {
        if (!k.startsWith(prefix)) continue;
        const child = k.slice(prefix.length);
        if ((special && entry === '/private' && child === 'specialuse') || isHidden(`${name === '' ? '' : `${name}/`}${child}`) || (depth === 1 && child.includes('/'))) continue;
        out.push({ entry: `${entry}/${child}`, value: v });
      }
    }
    return out;
  }

  /** All changes in one dict transaction (null deletes); nothing is written when one of them is refused. */
  async set(mailbox: string | null, changes: MetadataEntry[]): Promise<void> {
    const keyed: Array<[string, string | null]> = [];
    for (const { entry, value } of changes) {
      const auth = this.authority(mailbox, entry);
      if (auth) throw new MetadataError('READONLY', auth.key);
      if (isHidden(split(entry).name)) throw new MetadataError('INTERNAL');
      if (value !== null && value.includes('\0')) throw new MetadataError('NUL');
      keyed.push([await this.keyOf(mailbox, entry), value]);
    }
    if (!keyed.length) return;
    await this.dict.update((m) => {
      for (const [k, v] of keyed) {
        if (v === null) m.delete(k); else m.set(k, v);
      }
    });
  }
}

/**
 * The user's metadata when Dovecot would offer it over IMAP: `imap_metadata
 * = yes` and a `file:` mail_attribute_dict; otherwise why not (Dovecot's
 * NO text differs between the two).
 */
export function openUserMetadata(config: DovecotConfig, user: MailUser, store: MailStore, protocol: string): UserMetadata | 'disabled' | 'no-dict' {
  if (!config.getBool('imap_metadata', { protocol })) return 'disabled';
  const dictPath = attributeDictFile(config.get('mail_attribute_dict', { protocol }), user);
  if (!dictPath) return 'no-dict';
  return new UserMetadata(store, {
    dictPath,
    serverComment: config.get('mail_server_comment', { protocol }),
    serverAdmin: config.get('mail_server_admin', { protocol }),
  });
}
