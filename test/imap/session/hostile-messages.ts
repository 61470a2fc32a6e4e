/**
 * Messages built to cost a MIME parser as much as possible, shared by the
 * MIME-caps differential test and the hostile-input bench.
 */

/** `depth` multiparts each holding the next, a text leaf at the bottom (no boundary a prefix of another). */
export function deepMessage(depth: number): string {
  let head = 'From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n';
  let tail = '';
  for (let i = 0; i < depth; i++) {
    head += `Content-Type: multipart/mixed; boundary="b${i}z"\r\n\r\n--b${i}z\r\n`;
    tail = `\r\n--b${i}z--\r\n` + tail;
  }
  return head + 'Content-Type: text/plain\r\n\r\nleaf' + tail;
}

/** One multipart with `n` small text parts. */
export function wideMessage(n: number): string {
  const parts: string[] = ['From: a@example.org\r\nSubject: wide\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="w"\r\n\r\n'];
  for (let i = 1; i <= n; i++) parts.push(`--w\r\n\r\np${i}\r\n`);
  parts.push('--w--\r\n');
  return parts.join('');
}

/** An rfc822 message nested `depth` times. */
export function rfc822Message(depth: number): string {
  let m = 'Subject: inner\r\n\r\nbody\r\n';
  for (let i = 0; i < depth; i++) m = `Subject: s${i}\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n${m}`;
  return m;
}
