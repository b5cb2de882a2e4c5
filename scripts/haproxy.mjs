// HAProxy in front of modelslice servers, as the load-balancer test and `npm run bench:serve --
// --instances N` run it: least-connections balancing, a readiness check of GET /readyz every
// 100 ms (one failure takes a server out, one success brings it back, so a draining server
// stops receiving within a check interval).
import { spawnSync } from 'node:child_process';

/** The haproxy binary on this machine, or undefined (apt-get install haproxy). */
export function findHaproxy() {
  return ['/usr/sbin/haproxy', 'haproxy'].find((p) => spawnSync(p, ['-v']).status === 0);
}

/**
 * A configuration that listens on 127.0.0.1:port and balances over `servers` ("host:port" each).
 * @param {{ port: number, servers: string[], maxconn?: number, timeoutSeconds?: number }} options
 * @returns {string}
 */
export function haproxyConfig({ port, servers, maxconn = 4096, timeoutSeconds = 60 }) {
  return [
    'global',
    `  maxconn ${maxconn}`,
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    `  timeout client ${timeoutSeconds}s`,
    `  timeout server ${timeoutSeconds}s`,
    'frontend fe',
    `  bind 127.0.0.1:${port}`,
    '  default_backend be',
    'backend be',
    '  balance leastconn',
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    '  default-server inter 100ms fall 1 rise 1',
    ...servers.map((address, i) => `  server s${i} ${address} check`),
    '',
  ].join('\n');
}
