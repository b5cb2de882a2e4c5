// Two `modelslice serve` processes behind a real load balancer (HAProxy from Debian, started
// here, polling GET /readyz): they serve together, and one of them stopping with SIGTERM
// under load fails no request: its /readyz turns 503 at once while it keeps serving for
// --drain-delay-ms, HAProxy takes it out of rotation within a check interval, and only then
// does it close its listener and finish its queue. Skipped where haproxy is not installed
// (.ci/run installs it).
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import * as ms from '../../src/index.js';
import { findHaproxy, haproxyConfig } from '../../scripts/haproxy.mjs';
import { call, postJson } from './http.js';
import { startServe } from './serve-process.js';

const haproxy = findHaproxy();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function startInstance(t: Test, path: string, extra: string[]) {
  return startServe(t, ['--checkpoint', path, '--port', '0', '--slo-ms', '2000', '--max-batch', '4', '--threads', '1', ...extra]);
}

/** Predictions answered 200 by one instance, from its /metrics. */
async function served(url: string): Promise<number> {
  const text = (await call(`${url}/metrics`)).text;
  return Number(/^modelslice_requests_total\{route="predict",code="200"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

t.test('two instances behind HAProxy serve together; one draining fails no request', { skip: haproxy === undefined ? 'haproxy is not installed (apt-get install haproxy)' : false, timeout: 180000 }, async (t) => {
  ms.manualSeed(5);
  const model = ms.models.mlp({ inputs: 16, hidden: [32], classes: 4 });
  const path = join(t.testdir(), 'm.safetensors');
  await ms.save(model, path);
  const [a, b] = await Promise.all([startInstance(t, path, ['--drain-delay-ms', '1500']), startInstance(t, path, ['--drain-delay-ms', '1500'])]);

  const port = await freePort();
  const config = join(t.testdir(), 'haproxy.cfg');
  // Checks every 100 ms; one failed check takes a server out, one good one brings it back.
  writeFileSync(config, haproxyConfig({ port, servers: [a.url, b.url].map((u) => u.slice('http://'.length)), maxconn: 256, timeoutSeconds: 30 }));
  const check = spawnSync(haproxy!, ['-c', '-f', config], { encoding: 'utf8' });
  t.equal(check.status, 0, `haproxy -c accepts the configuration\n${check.stdout}${check.stderr}`);
  const lb = spawn(haproxy!, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => void lb.kill('SIGKILL'));
  const front = `http://127.0.0.1:${port}`;
  const input = { inputs: [new Array(16).fill(0.25)] };
  let forwarded = false;
  for (let i = 0; i < 200 && !forwarded; i++) {
    forwarded = (await postJson(`${front}/predict`, input).catch(() => null))?.status === 200;
    if (!forwarded) await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(forwarded, 'HAProxy forwards predictions');

  // Together: a burst of concurrent requests reaches both.
  const burst = await Promise.all(Array.from({ length: 40 }, () => postJson(`${front}/predict`, input)));
  t.same([...new Set(burst.map((r) => r.status))], [200], '40 concurrent predictions through HAProxy, all 200');
  const [sa, sb] = [await served(a.url), await served(b.url)];
  t.ok(sa > 0 && sb > 0, `both instances served (${sa} and ${sb})`);

  // Steady load from four clients while instance a stops.
  const statuses: number[] = [];
  const errors: string[] = [];
  let loading = true;
  const client = async () => {
    while (loading) {
      try {
        statuses.push((await postJson(`${front}/predict`, input)).status);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  };
  const clients = Array.from({ length: 4 }, client);
  await new Promise((r) => setTimeout(r, 300));
  const bBefore = await served(b.url);
  a.child.kill('SIGTERM');
  const code = await a.exited;
  await new Promise((r) => setTimeout(r, 300));
  loading = false;
  await Promise.all(clients);
  t.equal(code, 0, 'the drained instance exits 0');
  t.match(a.stdout(), /"signal":"SIGTERM"/);
  t.same(errors, [], 'no connection failed');
  const bad = statuses.filter((s) => s !== 200);
  t.same(bad, [], `every one of ${statuses.length} predictions during the drain answered 200`);
  t.ok((await served(b.url)) > bBefore, 'the other instance took the traffic');
  const after = await postJson(`${front}/predict`, input);
  t.equal(after.status, 200, 'and keeps serving alone');

  b.child.kill('SIGTERM');
  t.equal(await b.exited, 0);
});
