/**
 * `node --import <this file>`: every module the process (and its workers)
 * loads is appended, one file: URL per line, to $MODULE_TRACE_FILE (`%p` in
 * it: the process's pid, a file per process of a server tree) — for
 * tests that check what a command does NOT load (sealadm's lazy command
 * table). The hooks run on Node's loader thread (module.register).
 */
import { register } from 'node:module';

register(new URL('./module-trace-hooks.js', import.meta.url));
