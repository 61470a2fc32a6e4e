/**
 * The services a `sealmail --service NAME` process can run (service-processes.ts),
 * in a module of their own: main.ts checks its argument against them without
 * loading the service code a process of another service does not need.
 */
export const SERVICE_NAMES = ['imap', 'managesieve', 'pop3', 'lmtp', 'auth', 'quota-status'] as const;
export type ServiceName = typeof SERVICE_NAMES[number];
