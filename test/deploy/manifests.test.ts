// The container image and Kubernetes manifests (Dockerfile, deploy/kubernetes/): no Docker
// daemon or cluster exists here, so every manifest is validated against the Kubernetes API
// schemas (the kubernetes-models package, generated from the OpenAPI specs), the fields the
// deployment relies on are checked against each other and against the Dockerfile, and the
// Deployment's own container arguments start a real `modelslice serve`: its probe paths
// answer, the HPA's metric is in its /metrics, and SIGTERM stops it within the grace period.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import * as ms from '../../src/index.js';
import { call } from '../serve/http.js';
import { startServe } from '../serve/serve-process.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = join(root, 'deploy', 'kubernetes');

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const docs: { file: string; doc: Obj }[] = [];
for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
  for (const d of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0].message}`);
    docs.push({ file, doc: d.toJS() as Obj });
  }
}
const find = (kind: string) => {
  const hit = docs.find((d) => d.doc.kind === kind);
  if (hit === undefined) throw new Error(`no ${kind} in deploy/kubernetes`);
  return hit.doc;
};

// kind -> the kubernetes-models module of its apiVersion.
const models: Record<string, string> = {
  'apps/v1 Deployment': 'kubernetes-models/apps/v1/Deployment',
  'v1 Service': 'kubernetes-models/v1/Service',
  'autoscaling/v2 HorizontalPodAutoscaler': 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
  'policy/v1 PodDisruptionBudget': 'kubernetes-models/policy/v1/PodDisruptionBudget',
};

t.test('every manifest is valid against the Kubernetes API schema', async (t) => {
  t.ok(docs.length >= 4, `${docs.length} documents`);
  for (const { file, doc } of docs) {
    const key = `${doc.apiVersion} ${doc.kind}`;
    const module = models[key];
    t.ok(module, `${file}: ${key} is a kind this test validates`);
    if (!module) continue;
    const Model = Object.values(await import(module))[0] as new (o: Obj) => { validate(): void };
    t.doesNotThrow(() => new Model(doc).validate(), `${file}: ${key} ${doc.metadata?.name}`);
  }
  // The validator is real: a wrong type fails.
  const { Deployment } = await import('kubernetes-models/apps/v1/Deployment');
  const broken = structuredClone(find('Deployment'));
  broken.spec.template.spec.containers[0].ports[0].containerPort = '8080';
  t.throws(() => new Deployment(broken).validate(), /containerPort must be integer/);
});

/** The value after a flag in the container's args. */
function arg(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

t.test('the manifests agree with each other and with the Dockerfile', async (t) => {
  const deployment = find('Deployment');
  const pod = deployment.spec.template;
  const container = pod.spec.containers[0];
  const args: string[] = container.args;
  const labels = pod.metadata.labels;
  const port = container.ports.find((p: Obj) => p.name === 'http');
  t.ok(port, 'a container port named http');
  t.equal(String(port.containerPort), arg(args, '--port'), 'the container port is the one serve listens on');
  t.equal(arg(args, '--host'), '0.0.0.0', 'serve listens beyond loopback (its default is 127.0.0.1)');
  t.same(deployment.spec.selector.matchLabels, labels, 'the Deployment selects its pods');
  t.equal(container.readinessProbe.httpGet.path, '/readyz', 'readiness on /readyz');
  t.equal(container.livenessProbe.httpGet.path, '/healthz', 'liveness on /healthz');
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) t.equal(container[probe].httpGet.port, 'http', `${probe} on the http port`);
  const drainS = Number(arg(args, '--drain-delay-ms')) / 1000;
  const readiness = container.readinessProbe;
  t.ok(readiness.periodSeconds * readiness.failureThreshold < drainS, `the pod leaves the endpoints (${readiness.periodSeconds} s x ${readiness.failureThreshold}) within the drain delay (${drainS} s)`);
  t.ok(pod.spec.terminationGracePeriodSeconds > drainS + 30, `the grace period (${pod.spec.terminationGracePeriodSeconds} s) covers the drain delay and the 30 s shutdown timeout`);
  t.ok(arg(args, '--workers') && arg(args, '--threads'), 'workers and threads set explicitly (in a container Node sees the node\'s cores, not the CPU limit)');
  t.equal(String(container.resources.requests.cpu), String(Number(arg(args, '--workers')) * Number(arg(args, '--threads'))), 'one core requested per kernel thread');
  t.ok(container.volumeMounts.some((m: Obj) => arg(args, '--checkpoint')!.startsWith(`${m.mountPath}/`)), 'the checkpoint is on a mounted volume');

  const service = find('Service');
  t.same(service.spec.selector, labels, 'the Service selects the pods');
  t.equal(service.spec.ports[0].targetPort, 'http', 'and sends to the http port');
  const hpa = find('HorizontalPodAutoscaler');
  t.same([hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name, hpa.spec.scaleTargetRef.apiVersion], ['Deployment', deployment.metadata.name, deployment.apiVersion], 'the HPA scales the Deployment');
  t.ok(hpa.spec.minReplicas >= 2, 'at least two replicas, so one draining leaves one serving');
  t.same(find('PodDisruptionBudget').spec.selector.matchLabels, labels);

  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const instr = (name: string) => [...dockerfile.matchAll(new RegExp(`^${name}\\s+(.*)$`, 'gm'))].map((m) => m[1]);
  t.same(instr('EXPOSE'), [String(port.containerPort)], 'the image exposes the container port');
  t.same(instr('STOPSIGNAL'), ['SIGTERM']);
  t.same(instr('USER'), ['node'], 'the server runs as the image\'s unprivileged user (uid 1000)');
  t.equal(pod.spec.securityContext.runAsUser, 1000);
  const entry = JSON.parse(instr('ENTRYPOINT')[0]) as string[];
  t.equal(entry[1], '/app/node_modules/modelslice/dist/bin.js', 'the entry point is the installed package\'s bin');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[]; scripts: Record<string, string> };
  t.equal(join('/app/node_modules/modelslice', pkg.bin.modelslice), entry[1], 'as package.json names it');
  t.ok(pkg.files.includes('dist/**/*.js') && pkg.files.includes('prebuilds'), 'the tarball carries dist/ and the prebuild');
  t.ok(pkg.scripts['build:prebuild'], 'the build stage\'s npm run build:prebuild exists');
  t.equal(instr('FROM').length, 2, 'two stages: the compiler stays in the first');
  const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n');
  for (const p of ['node_modules', 'build', 'dist', 'prebuilds']) t.ok(ignored.includes(p), `.dockerignore keeps ${p} out (the build stage makes its own)`);
});

t.test("the Deployment's arguments start a real server: probes answer, the HPA's metric is there, SIGTERM stops it in time", async (t) => {
  const deployment = find('Deployment');
  const container = deployment.spec.template.spec.containers[0];
  const hpaMetric = find('HorizontalPodAutoscaler').spec.metrics[0].pods.metric.name as string;
  ms.manualSeed(2);
  const model = ms.models.mlp({ inputs: 16, hidden: [16], classes: 3 });
  const checkpoint = join(t.testdir(), 'model.safetensors');
  await ms.save(model, checkpoint);
  // The manifest's arguments, with a test checkpoint, a free port and loopback.
  const args = [...(container.args as string[])];
  args[args.indexOf('--checkpoint') + 1] = checkpoint;
  args[args.indexOf('--port') + 1] = '0';
  args[args.indexOf('--host') + 1] = '127.0.0.1';
  args[args.indexOf('--workers') + 1] = '1';
  args[args.indexOf('--threads') + 1] = '1';
  const { child, url, exited } = await startServe(t, args);
  for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) t.equal((await call(`${url}${container[probe].httpGet.path}`)).status, 200, `${probe} ${container[probe].httpGet.path}: 200`);
  t.match((await call(`${url}/metrics`)).text, new RegExp(`^${hpaMetric} \\d`, 'm'), `/metrics has the HPA's ${hpaMetric}`);
  const started = Date.now();
  child.kill('SIGTERM');
  t.ok(await until200Then503(`${url}${container.readinessProbe.httpGet.path}`), 'readiness fails at once after SIGTERM');
  t.equal((await call(`${url}${container.livenessProbe.httpGet.path}`)).status, 200, 'while liveness still passes');
  t.equal(await exited, 0, 'exits 0');
  const seconds = (Date.now() - started) / 1000;
  t.ok(seconds < deployment.spec.template.spec.terminationGracePeriodSeconds, `stopped in ${seconds.toFixed(1)} s, inside the grace period`);
});

async function until200Then503(url: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if ((await call(url)).status === 503) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}
