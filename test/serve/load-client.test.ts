// The benchmark's lean HTTP client (bench/http-client.mjs) against node:http: answers and
// statuses arrive whole and in the right callback, connections are reused and capped, a
// request beyond the cap waits for one, a server closing a connection (Connection: close,
// or a reset mid-answer) fails only the request in flight, and destroy ends the rest.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { HttpClient } from '../../bench/http-client.mjs';

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;

async function server(t: Test, handler: Handler): Promise<{ port: number; sockets: () => number }> {
  let sockets = 0;
  const s = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks), res));
  });
  s.on('connection', () => sockets++);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    s.closeAllConnections();
    s.close();
  });
  return { port: (s.address() as AddressInfo).port, sockets: () => sockets };
}

const post = (c: HttpClient, body: Buffer, path = '/p') => new Promise<{ status: number; text: string }>((resolve) => c.post(path, 'application/octet-stream', body, (status, text) => resolve({ status, text })));

t.test('answers arrive whole, in order per request, over reused connections', async (t) => {
  const { port, sockets } = await server(t, (req, body, res) => {
    // A large answer arrives in several chunks; the header case differs from node's default.
    const text = JSON.stringify({ path: req.url, type: req.headers['content-type'], n: body.length, sum: body.reduce((a, b) => a + b, 0), pad: 'x'.repeat(body[0] * 1000) });
    res.writeHead(body[0] === 7 ? 418 : 200, { 'CONTENT-LENGTH': Buffer.byteLength(text) });
    res.end(text);
  });
  const c = new HttpClient({ host: '127.0.0.1', port, maxSockets: 4 });
  t.teardown(() => c.destroy());
  const bodies = Array.from({ length: 40 }, (_, i) => Buffer.from([i % 9, 1, 2, 3, ...new Array(i * 100).fill(1)]));
  const answers = await Promise.all(bodies.map((b) => post(c, b, `/p${b[0]}`)));
  for (let i = 0; i < bodies.length; i++) {
    const a = answers[i];
    t.equal(a.status, bodies[i][0] === 7 ? 418 : 200);
    const j = JSON.parse(a.text) as { path: string; type: string; n: number; sum: number; pad: string };
    t.same([j.path, j.type, j.n, j.sum, j.pad.length], [`/p${bodies[i][0]}`, 'application/octet-stream', bodies[i].length, bodies[i].reduce((x, y) => x + y, 0), bodies[i][0] * 1000]);
  }
  t.equal(sockets(), 4, 'forty requests over the four connections allowed');
  t.equal(c.open, 4);
  t.equal((await post(c, Buffer.from([1]))).status, 200, 'and an idle connection is reused');
  t.equal(sockets(), 4);
});

t.test('Connection: close and a reset fail only what they must', async (t) => {
  const { port, sockets } = await server(t, (_req, body, res) => {
    if (body[0] === 1) return void res.socket?.destroy(); // reset before any answer
    res.writeHead(200, { 'Content-Length': '2', ...(body[0] === 2 ? { Connection: 'close' } : {}) });
    res.end('ok');
  });
  const c = new HttpClient({ host: '127.0.0.1', port, maxSockets: 1 });
  t.teardown(() => c.destroy());
  const [a, b, d, e] = await Promise.all([post(c, Buffer.from([0])), post(c, Buffer.from([2])), post(c, Buffer.from([1])), post(c, Buffer.from([0]))]);
  t.same([a, b], [{ status: 200, text: 'ok' }, { status: 200, text: 'ok' }]);
  t.same(d, { status: -1, text: '' }, 'the reset request fails');
  t.same(e, { status: 200, text: 'ok' }, 'the one waiting behind it gets a new connection');
  t.equal(sockets(), 3, 'one connection, then one after the close, then one after the reset');
});

t.test('a refused connection and destroy end requests with -1', async (t) => {
  const { port } = await server(t, () => {}); // never answers
  const c = new HttpClient({ host: '127.0.0.1', port, maxSockets: 1 });
  const hanging = [post(c, Buffer.from([0])), post(c, Buffer.from([0]))];
  await new Promise((r) => setTimeout(r, 50));
  c.destroy();
  t.same(await Promise.all(hanging), [{ status: -1, text: '' }, { status: -1, text: '' }], 'in flight and waiting');
  t.same(await post(c, Buffer.from([0])), { status: -1, text: '' }, 'after destroy');
  const refused = new HttpClient({ host: '127.0.0.1', port: 1, maxSockets: 2 });
  t.same(await post(refused, Buffer.from([0])), { status: -1, text: '' }, 'nothing listening');
  refused.destroy();
});
