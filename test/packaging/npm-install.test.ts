/**
 * Installation as an admin does it (README "Installing"): `npm pack` of this
 * tree, `npm install -g` of the tarball into a fresh prefix, then `sealadm`
 * and `sealmail` run from that prefix's bin/ on PATH — the server starts, a
 * user logs in, appends and reads back. Checks that the package carries the
 * compiled server (and not the tests), the sample tree, the schemas and the
 * systemd unit, and that the native addon is built on the target at install.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnOwned } from '../helpers/children.js';
import { repoRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { requireTool, findTool } from '../helpers/tools.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';

/** Run a command to its end (bounded), with its output; a non-zero exit fails the test. */
async function run(t: import('node:test').TestContext, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const child = spawnOwned(t, cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 5 * 60_000);
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  clearTimeout(timer);
  assert.equal(code, 0, `${cmd} ${args.join(' ')} failed:\n${out}`);
  return out;
}

test('npm pack + npm install -g into a fresh prefix: sealmail and sealadm on PATH, the server serves a login', async (t) => {
  const npm = findTool('npm') ?? join(process.execPath, '..', 'npm');
  if (!requireTool(t, 'cc')) return;
  const dir = tempDir(t, 'npm-install');
  chmodSync(dir, 0o755); // mail processes run as the mail uid and import the installed modules
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

  // dist/ is built by the test command; packing must not rebuild it under the running suite
  await run(t, npm, ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: repoRoot });
  const tgz = join(dir, `sealmail-${version}.tgz`);
  const listing = (await run(t, 'tar', ['tzf', tgz])).split('\n');
  for (const f of ['bin/sealmail', 'bin/sealadm', 'dist/src/server/main.js', 'dist/src/cli/sealadm.js', 'dist/scripts/build-native.js', 'native/tcp-sockopt.c', 'conf.d/dovecot.conf', 'sql/mysql.sql', 'systemd/sealmail.service', 'dovecot-compat.md'])
    assert.ok(listing.includes(`package/${f}`), `the package has ${f}`);
  for (const f of listing) assert.ok(!/^package\/(test|bench|dist\/test|dist\/bench|dist\/native)\//.test(f), `no tests, benches or prebuilt addon in the package: ${f}`);

  const prefix = join(dir, 'prefix');
  // dependencies come from npm's cache where `npm ci` put them, else the registry
  await run(t, npm, ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--allow-scripts=sealmail', tgz]);
  const bin = join(prefix, 'bin');
  assert.ok(existsSync(join(prefix, 'lib', 'node_modules', 'sealmail', 'dist', 'native', 'tcp-sockopt.node')), 'the TCP_QUICKACK addon was built at install');
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
  assert.equal((await run(t, 'sealadm', ['--version'], { env })).trim(), `sealadm (Sealmail) ${version}`);

  const srv = await startSealmail(t, { bin: 'sealmail', env: { PATH: env.PATH! } });
  assert.doesNotMatch(srv.output(), /TCP_QUICKACK unavailable/);
  const c = await ImapLine.open(srv.imapPort);
  assert.match(await c.cmd('a', 'LOGIN installed@example.org pass'), /^a OK /m);
  assert.match(await c.cmd('b', 'APPEND INBOX {27+}\r\nSubject: from PATH\r\n\r\nhello'), /^b OK \[APPENDUID \d+ 1\]/m);
  assert.match(await c.cmd('c', 'SELECT INBOX'), /^\* 1 EXISTS/m);
  assert.match(await c.cmd('d', 'FETCH 1 BODY[HEADER.FIELDS (SUBJECT)]'), /Subject: from PATH/);
  c.close();
  assert.equal(await srv.stop(), 0);
});
