/**
 * The client side of the master's admin socket (server/admin-socket.ts):
 * one request, the answer's lines. A failure to connect rejects with the
 * C library's text for the errno (what doveadm prints after "failed: ").
 */
import { connect } from 'node:net';

const STRERROR: Record<string, string> = { ENOENT: 'No such file or directory', EACCES: 'Permission denied', ECONNREFUSED: 'Connection refused', ENOTSOCK: 'Socket operation on non-socket' };

export function askAdmin(path: string, request: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => { text += d; });
    s.on('error', (e: NodeJS.ErrnoException) => reject(new Error(STRERROR[e.code ?? ''] ?? e.message)));
    s.on('end', () => resolve(text.split('\n')));
    s.write(request + '\n');
  });
}
