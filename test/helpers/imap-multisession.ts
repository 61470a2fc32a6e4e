/**
 * Lock-step IMAP over several connections of one user (differential tests
 * where sessions interleave: CONDSTORE, NOTIFY): each script line is one
 * command for connection N (`N:` prefix, default 1), waited for until its
 * tagged reply; `TAG IDLE` waits for the continuation and `DONE TAG` for the
 * notifications to settle. `=name` saves the last HIGHESTMODSEQ seen for
 * `${name}` in later lines (`${uidv}`: the last UIDVALIDITY). The transcript
 * prefixes each line with its connection number.
 */
import { connect, type Socket } from 'node:net';

/** Lock-step over several connections; the transcript prefixes each line with its connection number. */
export async function multiTranscript(port: number, lines: string[]): Promise<string> {
  // every byte is kept (IDLE notifications arrive between commands); `check` ends the command waited for
  const conns = new Map<string, { s: Socket; buf: string; check: () => void }>();
  const vars: Record<string, string> = {};
  let out = '';
  const open = async (id: string) => {
    const s = connect(port, '127.0.0.1');
    const c = { s, buf: '', check: () => undefined as void };
    conns.set(id, c);
    await new Promise<void>((r) => { c.check = () => { if (c.buf.includes('\r\n')) r(); }; s.on('data', (d: Buffer) => { c.buf += d.toString('latin1'); c.check(); }); });
    c.buf = '';
    await run(id, 'L0', 'L0 LOGIN bob@example.org pass\r\n');
  };
  const run = (id: string, tag: string, text: string, until = new RegExp(`(^|\r\n)${tag} (OK|NO|BAD) [^\r\n]*\r\n$`)) => new Promise<void>((resolve, reject) => {
    const c = conns.get(id)!;
    const timer = setTimeout(() => reject(new Error(`no answer to ${tag} from port ${port}: ${c.buf.slice(-300)}`)), 15_000);
    c.check = () => {
      const m = until.exec(c.buf);
      if (!m) return;
      c.check = () => undefined;
      clearTimeout(timer);
      // what came after the awaited line (an IDLE notification right behind `+ idling`) stays for the next step
      const done = c.buf.slice(0, m.index + m[0].length);
      c.buf = c.buf.slice(done.length);
      for (const l of done.split('\r\n')) {
        if (!l) continue;
        out += `${id} ${l}\r\n`;
        const h = /HIGHESTMODSEQ (\d+)/.exec(l);
        if (h) vars.hms = h[1];
        const v = /UIDVALIDITY (\d+)/.exec(l);
        if (v) vars.uidv = v[1];
      }
      resolve();
    };
    c.s.write(text, 'latin1');
  });
  // IDLE: the notification has arrived and nothing more came for 500 ms (at most 15 s, as for a
  // command: then the comparison shows what is missing)
  const settled = async (c: { buf: string }) => {
    const end = Date.now() + 15_000;
    let last = -1;
    let since = Date.now();
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      if (c.buf.length !== last) { last = c.buf.length; since = Date.now(); continue; }
      if (c.buf.length > 0 && Date.now() - since >= 500) return;
    }
  };
  for (const raw of lines) {
    if (raw.startsWith('=')) { vars[raw.slice(1)] = vars.hms; continue; }
    const m = /^(\d):(.*)$/s.exec(raw);
    const id = m ? m[1] : '1';
    const line = (m ? m[2] : raw).replace(/\$\{(\w+)\}/g, (_, n: string) => vars[n] ?? `?${n}`);
    if (!conns.has(id)) await open(id);
    // `TAG IDLE` waits for the continuation; `DONE TAG` waits for the notifications, then ends it
    if (/^\S+ IDLE$/.test(line)) await run(id, line.split(' ')[0], `${line}\r\n`, /(^|\r\n)\+ idling\r\n/);
    else if (line.startsWith('DONE ')) { await settled(conns.get(id)!); await run(id, line.slice(5), 'DONE\r\n'); }
    else await run(id, line.split(' ')[0], `${line}\r\n`);
  }
  for (const c of conns.values()) c.s.destroy();
  return out;
}
