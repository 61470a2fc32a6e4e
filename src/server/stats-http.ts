/**
 * `service stats { inet_listener http { port = 9900 } }`: Dovecot's stats
 * process serves its OpenMetrics export at GET /metrics on the listener
 * named `http` (stats/main.c, client-http.c, stats-service-openmetrics.c);
 * Sealmail's master does, from the registry of stats-metrics.ts. Other
 * paths are 404 as Dovecot answers them; OPTIONS says GET is allowed,
 * other methods get 405.
 */
import { createServer, type Server } from 'node:http';
import type { DovecotConfig } from '../config/settings.js';
import { serviceListenerSpecs } from './listeners.js';
import type { MetricsRegistry } from './stats-metrics.js';

const CONTENT_TYPE = 'application/openmetrics-text; version=0.0.1; charset=utf-8';

export interface StatsListener { server: Server; address: string; port: number }

export async function openStatsListeners(config: DovecotConfig, registry: MetricsRegistry): Promise<StatsListener[]> {
  const open: StatsListener[] = [];
  try {
    for (const spec of serviceListenerSpecs(config, 'stats')) {
      if (spec.name !== 'http') continue;
      const server = createServer((req, res) => {
        const path = (req.url ?? '').split('?')[0];
        if (path !== '/metrics') { res.writeHead(404, 'Path Not Found', { 'Content-Length': '0' }).end(); return; }
        if (req.method === 'OPTIONS') { res.writeHead(200, { Allow: 'GET', 'Content-Length': '0' }).end(); return; }
        if (req.method !== 'GET') { res.writeHead(405, 'Method Not Allowed', { Allow: 'GET', 'Content-Length': '0' }).end(); return; }
        const body = Buffer.from(registry.render());
        res.writeHead(200, { 'Content-Type': CONTENT_TYPE, 'Content-Length': String(body.length) }).end(body);
      });
      server.keepAliveTimeout = 5000;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(spec.port, spec.address, () => { server.off('error', reject); resolve(); });
      }).catch((e: Error) => { throw new Error(`service(stats): listen(${spec.address}, ${spec.port}) failed: ${e.message}`); });
      open.push({ server, address: spec.address, port: spec.port });
    }
  } catch (e) {
    for (const l of open) l.server.close();
    throw e;
  }
  return open;
}

export function closeStatsListeners(list: StatsListener[]): void {
  for (const l of list) { l.server.closeAllConnections(); l.server.close(); }
}
