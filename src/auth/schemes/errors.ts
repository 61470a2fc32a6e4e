/**
 * The password schemes' error, in a module of its own: the main thread (auth
 * engine, sealadm) tells scheme failures apart without loading the schemes
 * themselves (bcryptjs, Argon2), which only the hash workers run.
 */
export class SchemeError extends Error {}
