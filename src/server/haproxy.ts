/**
 * The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2) on
 * listeners marked `haproxy = yes`, as Dovecot 2.3's
 * lib-master/master-service-haproxy.c reads it: only from peers in
 * `haproxy_trusted_networks` (others: `haproxy: Client not trusted (rip=…)`,
 * disconnected), within `haproxy_timeout` (default 3 s), before any byte of
 * the protocol or of TLS. The header then replaces the connection's
 * addresses for logging, penalties, login_trusted_networks and allow_nets
 * (mail_max_userip_connections still counts the proxy's); a v2 SSL TLV marks
 * the client as having used TLS to the proxy. Dovecot's log texts are kept so
 * log watchers read both servers alike.
 */
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { ServerTlsOptions } from './tls-context.js';
import { ipInNetwork, type DovecotConfig } from '../config/settings.js';
import type { ListenerSpec } from './listeners.js';
import { implicitTls } from './starttls.js';

export interface ProxiedAddresses {
  rip: string;
  rport: number;
  lip: string;
  lport: number;
  /** The client spoke TLS to the proxy (PP2_TYPE_SSL with PP2_CLIENT_SSL). */
  ssl: boolean;
}

export type HeaderResult =
  | { kind: 'more' }
  | { kind: 'ok'; consumed: number; addr: Partial<ProxiedAddresses> }
  | { kind: 'fail'; level: 'error' | 'info'; text: string };

/** v1's longest line (master-service-haproxy.c: HAPROXY_V1_MAX_HEADER_SIZE). */
const V1_MAX = 108;
/** Dovecot's receive buffer for v2: a longer header is refused. */
const V2_MAX = 1500;
const V2_SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

const PP2_TYPE_SSL = 0x20;
const PP2_CLIENT_SSL = 0x01;

/**
 * Parse a PROXY header at the start of `buf` (what has arrived so far).
 * `rip` is the real peer, for the error texts.
 */
export function parseProxyHeader(buf: Buffer, rip: string): HeaderResult {
  const fail = (text: string, level: 'error' | 'info' = 'error'): HeaderResult => ({ kind: 'fail', level, text });
  if (buf.length >= 5 && buf.subarray(0, 5).toString('latin1') === 'PROXY') return parseV1(buf, rip, fail);
  const sigLen = Math.min(buf.length, V2_SIG.length);
  if (buf.subarray(0, sigLen).equals(V2_SIG.subarray(0, sigLen))) {
    if (buf.length < 16) return { kind: 'more' };
    return parseV2(buf, rip, fail);
  }
  if (buf.length < 5 && Buffer.from('PROXY').subarray(0, buf.length).equals(buf)) return { kind: 'more' };
  return fail(`haproxy: Client disconnected: Failed to read valid HAproxy data (rip=${rip})`);
}

function parseV1(buf: Buffer, rip: string, fail: (t: string, l?: 'error' | 'info') => HeaderResult): HeaderResult {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (buf.length < V1_MAX) return { kind: 'more' };
    return fail(`haproxy: Client disconnected: Failed to read valid HAproxy data (rip=${rip})`);
  }
  if (end + 2 > V1_MAX) return fail(`haproxy: Client disconnected: Failed to read valid HAproxy data (rip=${rip})`);
  const fields = buf.subarray(0, end).toString('latin1').split(' ').slice(1);
  const san = (s: string) => s.slice(0, 64);
  const proto = fields.shift();
  if (proto === undefined) return fail(`haproxy(v1): Client disconnected: Field for proxied protocol is missing (rip=${rip})`);
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : proto === 'UNKNOWN' ? 0 : -1;
  if (family < 0) return fail(`haproxy(v1): Client disconnected: Unknown proxied protocol (protocol=\`${san(proto)}', rip=${rip})`);
  if (family === 0) return { kind: 'ok', consumed: end + 2, addr: {} };
  const [src, dst, sport, dport, extra] = fields;
  if (src === undefined) return fail(`haproxy(v1): Client disconnected: Field for proxied remote address is missing (rip=${rip})`);
  if (isIP(src) !== family) return fail(`haproxy(v1): Client disconnected: Proxied remote address is invalid (address=\`${san(src)}', rip=${rip})`);
  if (dst === undefined) return fail(`haproxy(v1): Client disconnected: Field for proxied local address is missing (rip=${rip})`);
  if (isIP(dst) !== family) return fail(`haproxy(v1): Client disconnected: Proxied local address is invalid (address=\`${san(dst)}', rip=${rip})`);
  // Dovecot's text says "local port" for the missing remote port too
  if (sport === undefined) return fail(`haproxy(v1): Client disconnected: Field for proxied local port is missing (rip=${rip})`);
  const rport = port(sport);
  if (rport === null) return fail(`haproxy(v1): Client disconnected: Proxied remote port is invalid (port=\`${san(sport)}', rip=${rip})`);
  if (dport === undefined) return fail(`haproxy(v1): Client disconnected: Field for proxied local port is missing (rip=${rip})`);
  const lport = port(dport);
  if (lport === null) return fail(`haproxy(v1): Client disconnected: Proxied local port is invalid (port=\`${san(dport)}', rip=${rip})`);
  if (extra !== undefined) return fail(`haproxy(v1): Client disconnected: Header line has spurius extra field (field=\`${san(extra)}', rip=${rip})`);
  return { kind: 'ok', consumed: end + 2, addr: { rip: src, lip: dst, rport, lport, ssl: false } };
}

/** net_str2port: 1–65535, digits only. */
function port(s: string): number | null {
  if (!/^[0-9]{1,5}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : null;
}

function parseV2(buf: Buffer, rip: string, fail: (t: string, l?: 'error' | 'info') => HeaderResult): HeaderResult {
  const len = buf.readUInt16BE(14);
  const size = 16 + len;
  if (size > V2_MAX) return fail(`haproxy: Client disconnected: Too long header (rip=${rip})`);
  if (buf.length < size) return { kind: 'more' };
  const verCmd = buf[12];
  const fam = buf[13];
  if ((verCmd & 0xf0) !== 0x20) return fail(`haproxy: Client disconnected: Unsupported protocol version (version=${hex((verCmd & 0xf0) >> 4)}, rip=${rip})`);
  const cmd = verCmd & 0x0f;
  if (cmd === 0x00) return { kind: 'ok', consumed: size, addr: {} }; // LOCAL: the proxy's own health check
  if (cmd !== 0x01) return fail(`haproxy(v2): Client disconnected: Invalid command (cmd=${hex(cmd)}, rip=${rip})`);
  if ((fam & 0x0f) !== 0x01) return fail(`haproxy(v2): Client disconnected: Not using TCP (type=${hex(fam & 0x0f)}, rip=${rip})`);
  const af = (fam & 0xf0) >> 4;
  const addr: Partial<ProxiedAddresses> = { ssl: false };
  let i = 16;
  if (af === 0x01) {
    if (len < 12) return fail(`haproxy(v2): Client disconnected: IPv4 data is incomplete (rip=${rip})`);
    addr.rip = [...buf.subarray(16, 20)].join('.');
    addr.lip = [...buf.subarray(20, 24)].join('.');
    addr.rport = buf.readUInt16BE(24);
    addr.lport = buf.readUInt16BE(26);
    i += 12;
  } else if (af === 0x02) {
    if (len < 36) return fail(`haproxy(v2): Client disconnected: IPv6 data is incomplete (rip=${rip})`);
    addr.rip = ip6(buf.subarray(16, 32));
    addr.lip = ip6(buf.subarray(32, 48));
    addr.rport = buf.readUInt16BE(48);
    addr.lport = buf.readUInt16BE(50);
    i += 36;
  } else if (af !== 0x00 && af !== 0x03) {
    return fail(`haproxy(v2): Client disconnected: Unknown address family (family=${hex(af)}, rip=${rip})`);
  }
  // AF_UNSPEC / AF_UNIX: Dovecot logs "Unsupported address family" and keeps the real addresses
  // TLVs follow the address block
  for (let p = i; p < size;) {
    if (size - p < 3) return fail(`haproxy(v2): Client disconnected: Invalid TLV: get_tlv(${p - i}) failed: Truncated data (cmd=${hex(cmd)}, rip=${rip})`);
    const type = buf[p];
    const tlen = buf.readUInt16BE(p + 1);
    if (p + 3 + tlen > size) return fail(`haproxy(v2): Client disconnected: Invalid TLV: get_tlv(${p - i}) failed: Truncated data (cmd=${hex(cmd)}, rip=${rip})`);
    if (type === PP2_TYPE_SSL) {
      if (tlen < 5) return fail(`haproxy(v2): Client disconnected: Invalid TLV: get_ssl_tlv(${p - i}) failed: Truncated data (cmd=${hex(cmd)}, rip=${rip})`);
      addr.ssl = (buf[p + 3] & PP2_CLIENT_SSL) !== 0;
    }
    p += 3 + tlen;
  }
  return { kind: 'ok', consumed: size, addr };
}

const hex = (n: number) => n.toString(16).padStart(2, '0');

function ip6(b: Buffer): string {
  const words: string[] = [];
  for (let k = 0; k < 16; k += 2) words.push(b.readUInt16BE(k).toString(16));
  // the canonical short form, as net_ip2addr prints it
  const text = words.join(':');
  const runs = [...text.matchAll(/(?:^|:)0(?::0)+(?::|$)/g)];
  if (runs.length === 0) return text;
  const longest = runs.reduce((a, r) => (r[0].length > a[0].length ? r : a));
  const at = longest.index!;
  return `${text.slice(0, at)}::${text.slice(at + longest[0].length)}`;
}

/** `haproxy_trusted_networks` (spaces or commas). */
export function isTrustedPeer(rip: string, networks: string): boolean {
  return networks.split(/[\s,]+/).filter(Boolean).some((n) => ipInNetwork(rip, n));
}

export interface HaproxyOptions {
  /** The real peer address. */
  rip: string;
  trustedNetworks: string;
  timeoutMs: number;
  log: { error(m: string): void; warn(m: string): void; info(m: string): void };
}

export interface ProxyHeader {
  addr: Partial<ProxiedAddresses>;
  /** Bytes that arrived after the header (the protocol's or TLS's first bytes). */
  rest: Buffer;
}

/**
 * Read the PROXY header from a fresh connection. Resolves with the proxied
 * addresses (empty for LOCAL/UNKNOWN: keep the real ones) and the bytes
 * after the header, or null after logging why and destroying the socket.
 * The socket is left paused; continue with afterHeader().
 */
export function readProxyHeader(socket: Socket, opts: HaproxyOptions): Promise<ProxyHeader | null> {
  return new Promise((resolve) => {
    if (!isTrustedPeer(opts.rip, opts.trustedNetworks)) {
      opts.log.warn(`haproxy: Client not trusted (rip=${opts.rip})`);
      socket.destroy();
      resolve(null);
      return;
    }
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (r: ProxyHeader | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      if (!r) socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => { opts.log.error(`haproxy: Client timed out (rip=${opts.rip})`); finish(null); }, opts.timeoutMs);
    const onClose = () => { opts.log.info(`haproxy: Client disconnected (rip=${opts.rip}): Connection reset by peer`); finish(null); };
    const onData = (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      const r = parseProxyHeader(buf, opts.rip);
      if (r.kind === 'more') {
        if (buf.length > V2_MAX) { opts.log.error(`haproxy: Client disconnected: Too long header (rip=${opts.rip})`); finish(null); }
        return;
      }
      if (r.kind === 'fail') {
        (r.level === 'error' ? opts.log.error : opts.log.info).call(opts.log, r.text);
        finish(null);
        return;
      }
      finish({ addr: r.addr, rest: Buffer.from(buf.subarray(r.consumed)) });
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.resume();
  });
}

/**
 * The stream the protocol reads after the header. A plain connection gets
 * the extra bytes back with unshift(). TLS cannot start on the socket
 * itself: a TLSSocket takes the socket's handle and would miss bytes already
 * read into JavaScript (the header's read may have taken the ClientHello),
 * so it gets a duplex that replays them first and then relays the socket.
 */
export function afterHeader(raw: Socket, rest: Buffer, forTls: boolean): Socket | Duplex {
  if (!forTls) {
    if (rest.length) raw.unshift(rest);
    return raw;
  }
  const relay = new Duplex({
    read() { raw.resume(); },
    write(chunk: Buffer, _enc, cb) { raw.write(chunk, cb); },
    final(cb) { raw.end(); cb(); },
    destroy(err, cb) { raw.destroy(err ?? undefined); cb(err); },
  });
  if (rest.length) relay.push(rest);
  raw.on('data', (d: Buffer) => { if (!relay.push(d)) raw.pause(); });
  raw.once('end', () => relay.push(null));
  raw.once('close', () => relay.destroy());
  raw.on('error', (e) => relay.destroy(e));
  return relay;
}

export interface ClientAddresses {
  rip: string;
  lip: string;
  /** TLS to a PROXY-protocol proxy in front (a v2 SSL TLV). */
  proxiedSsl: boolean;
  /** The client (its possibly proxied address) is in `login_trusted_networks`. */
  trusted: boolean;
}

const bare = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');

export interface ListenerConnectionDeps {
  config: DovecotConfig;
  /** The login service's logger (imap-login, managesieve-login), for haproxy's lines. */
  log: HaproxyOptions['log'];
  /** The TLS context for ssl = yes listeners (null: none configured). */
  tls: () => ServerTlsOptions | null;
}

/**
 * A connection from a listener, before its protocol starts: the PROXY header
 * first on `haproxy = yes` listeners, then TLS on `ssl = yes` ones. `go` gets
 * the stream to speak the protocol on and the client's addresses (proxied
 * ones when a trusted proxy sent them); `dropped` runs when the header was
 * refused (the socket is already destroyed and the reason logged).
 */
export function fromListener(raw: Socket, spec: ListenerSpec, deps: ListenerConnectionDeps,
  go: (stream: Socket | TLSSocket, addr: ClientAddresses) => void, dropped: () => void): void {
  const realRip = bare(raw.remoteAddress);
  const realLip = bare(raw.localAddress);
  const trusted = (rip: string) => isTrustedPeer(rip, deps.config.get('login_trusted_networks'));
  const ctx = spec.ssl ? deps.tls() : null;
  if (!spec.haproxy) {
    go(ctx ? implicitTls(raw, ctx) : raw, { rip: realRip, lip: realLip, proxiedSsl: false, trusted: trusted(realRip) });
    return;
  }
  const opts: HaproxyOptions = {
    rip: realRip,
    trustedNetworks: deps.config.get('haproxy_trusted_networks'),
    timeoutMs: deps.config.getTime('haproxy_timeout') || 3000,
    log: deps.log,
  };
  void readProxyHeader(raw, opts).then((h) => {
    if (!h) { dropped(); return; }
    const rip = h.addr.rip ?? realRip;
    const stream = afterHeader(raw, h.rest, !!ctx);
    go(ctx ? implicitTls(stream, ctx) : (stream as Socket), { rip, lip: h.addr.lip ?? realLip, proxiedSsl: h.addr.ssl ?? false, trusted: trusted(rip) });
    // the header's reader paused the socket explicitly, so the session's 'data' listener
    // (attached synchronously in go) does not restart it by itself
    if (!ctx) raw.resume();
  });
}
