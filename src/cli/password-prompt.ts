/**
 * Read a password without it ever touching argv or a log: from the terminal
 * with echo off (as doveadm's t_askpass does), or one line from stdin when
 * stdin is not a terminal (scripts: `printf '%s\n' "$PW" | sealadm …`).
 * Input holding a NUL is read as NUL-terminated passwords instead: that is
 * how PostfixAdmin's mailbox_postpassword_script gets "old\0new\0".
 */
let stdinLines: string[] | null = null;
let stdinDone: Promise<void> | null = null;

async function readAllStdin(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  stdinLines = text.includes('\0') ? text.split('\0') : text.split(/\r?\n/);
}

export async function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    stdinDone ??= readAllStdin();
    await stdinDone;
    const line = stdinLines!.shift();
    if (line === undefined) throw new Error('no password given on standard input');
    return line;
  }
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') { done(); resolve(buf); return; }
        if (ch === '\u0003') { done(); reject(new Error('interrupted')); return; }
        if (ch === '\u007f' || ch === '\b') buf = buf.slice(0, -1);
        else buf += ch;
      }
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}
