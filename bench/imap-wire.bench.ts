/**
 * IMAP wire parsing throughput: a command-heavy stream (FETCH/STORE/SEARCH
 * lines with lists and quoted strings) in commands/s, and a literal-heavy
 * APPEND stream (1 MiB literals, streamed, 64 KiB socket-sized chunks) in MB/s.
 * In-process only: Dovecot has no comparable standalone parser to time.
 */
import { CommandReader } from '../src/imap/wire/parser.js';
import { medianMs, type BenchRow } from './harness.js';

function commandStream(n: number): Buffer {
  const lines = [
    'a FETCH 1:* (FLAGS UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])\r\n',
    'b UID STORE 100:200 +FLAGS.SILENT (\\Seen $Forwarded)\r\n',
    'c SEARCH CHARSET UTF-8 OR FROM "alice@example.org" SUBJECT "quarterly \\"report\\"" SINCE 1-Jan-2024\r\n',
    'd NOOP\r\n',
  ];
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(lines[i % lines.length]);
  return Buffer.from(out.join(''), 'latin1');
}

function feed(stream: Buffer, chunk: number, opts: ConstructorParameters<typeof CommandReader>[0]): number {
  const r = new CommandReader(opts);
  let commands = 0;
  for (let i = 0; i < stream.length; i += chunk) for (const e of r.push(stream.subarray(i, i + chunk))) if (e.type === 'command') commands++;
  return commands;
}

export default async function bench(): Promise<BenchRow[]> {
  const n = 200_000;
  const cmds = commandStream(n);
  const msCmd = await medianMs(5, () => feed(cmds, 16384, {}));
  const body = Buffer.alloc(1 << 20, 0x61);
  const head = Buffer.from('x APPEND INBOX (\\Seen) {1048576+}\r\n');
  const parts: Buffer[] = [];
  for (let i = 0; i < 64; i++) parts.push(head, body, Buffer.from('\r\n'));
  const appends = Buffer.concat(parts);
  const msLit = await medianMs(5, () => feed(appends, 65536, { streamLiteral: () => true }));
  return [
    { name: `imap wire: parse ${n / 1000}k mixed commands (16 KiB chunks)`, sealmail: `${Math.round(n / (msCmd / 1000)).toLocaleString('en')} cmd/s`, dovecot: 'n/a', note: `${(cmds.length / 1e6 / (msCmd / 1000)).toFixed(0)} MB/s` },
    { name: 'imap wire: 64 APPENDs of 1 MiB streamed literals', sealmail: `${(appends.length / 1e6 / (msLit / 1000)).toFixed(0)} MB/s`, dovecot: 'n/a', note: 'zero-copy: chunks are views of the input; the sink decides the real cost' },
  ];
}
