/**
 * XCLIENT before login (Dovecot's pop3-login cmd_xclient, Pigeonhole's
 * managesieve-login cmd_xclient): a proxy or webmail in
 * login_trusted_networks names the real client, whose address is then the
 * one logged, penalised and checked (allow_nets, mail_max_userip_connections).
 * Parameters are `KEY=value`, keys case-insensitive: ADDR (an IP, brackets
 * allowed as net_addr2ip allows them), PORT (1..65535), SESSION (kept only up
 * to login-common's 64 characters), TTL (an unsigned number), FORWARD
 * (base64 of forwarded fields). Unknown keys are ignored, as Dovecot ignores
 * them; one invalid value makes the whole command fail and changes nothing.
 */
import { isIP } from 'node:net';

/** login-common's LOGIN_MAX_SESSION_ID_LEN. */
const MAX_SESSION_ID_LEN = 64;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const DIGITS = /^[0-9]+$/;

export interface XclientUpdate {
  rip?: string;
  rport?: number;
  session?: string;
  ttl?: number;
  forward?: Buffer;
}

/** The parameters' effect, or null when one of them is invalid (then nothing is applied). */
export function parseXclient(params: string[]): XclientUpdate | null {
  const u: XclientUpdate = {};
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const key = p.slice(0, eq).toUpperCase();
    const value = p.slice(eq + 1);
    switch (key) {
      case 'ADDR': {
        const ip = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
        if (!isIP(ip)) return null;
        u.rip = ip;
        break;
      }
      case 'PORT': {
        const n = DIGITS.test(value) ? Number(value) : NaN;
        if (!(n >= 1 && n <= 65535)) return null; // net_str2port refuses 0
        u.rport = n;
        break;
      }
      case 'SESSION':
        if (value.length <= MAX_SESSION_ID_LEN) u.session = value;
        break;
      case 'TTL': {
        const n = DIGITS.test(value) ? Number(value) : NaN;
        if (!(n <= 0xffffffff)) return null;
        u.ttl = n;
        break;
      }
      case 'FORWARD':
        if (value.length % 4 === 1 || !BASE64.test(value)) return null;
        u.forward = Buffer.from(value, 'base64');
        break;
    }
  }
  return u;
}
