// A lean HTTP/1.1 client for load generation: keep-alive connections over node:net, one
// request in flight per connection, at most `maxSockets` connections, requests beyond them
// waiting in order (as node:http's Agent does). It writes a request as one buffer and reads only
// the status line, Content-Length and Connection of the answer, so a request costs the load
// generator a fraction of what http.request does (19% of a core at 1400 requests/s, against
// the cores the server under test needs: bench/RESULTS.md). It speaks only what a benchmark
// needs: POST with a body, answers with Content-Length.
import { connect } from 'node:net';

const HEAD_END = Buffer.from('\r\n\r\n');

export class HttpClient {
  /**
   * @param {{ host: string, port: number | string, maxSockets?: number }} options
   */
  constructor({ host, port, maxSockets = 256 }) {
    this.host = host;
    this.port = Number(port);
    this.maxSockets = maxSockets;
    this.idle = []; // connections with nothing in flight, the most recently used last
    this.all = new Set();
    this.open = 0;
    this.waiting = []; // requests waiting for a connection
    this.destroyed = false;
    this.heads = new Map();
  }

  /**
   * POSTs `body` to `path`; `done(status, text)` gets the status code and the answer's body as
   * text, or status -1 when the connection failed or closed before the whole answer arrived.
   */
  post(path, contentType, body, done) {
    if (this.destroyed) return void setImmediate(() => done(-1, ''));
    const key = `${path}\n${contentType}\n${body.length}`;
    let head = this.heads.get(key);
    if (head === undefined) {
      head = Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1');
      this.heads.set(key, head);
    }
    const job = { request: Buffer.concat([head, body]), done };
    const conn = this.idle.pop();
    if (conn !== undefined) this.start(conn, job);
    else if (this.open < this.maxSockets) this.start(this.connect(), job);
    else this.waiting.push(job);
  }

  /** Closes every connection; requests in flight or waiting end with status -1. */
  destroy() {
    this.destroyed = true;
    for (const job of this.waiting.splice(0)) job.done(-1, '');
    this.idle = [];
    for (const conn of [...this.all]) conn.socket.destroy();
  }

  connect() {
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    const conn = { socket, job: null, chunks: [], size: 0, closing: false };
    this.open++;
    this.all.add(conn);
    socket.on('data', (chunk) => this.onData(conn, chunk));
    socket.on('error', () => {}); // 'close' follows and fails the request in flight
    socket.on('close', () => {
      this.open--;
      this.all.delete(conn);
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      const job = conn.job;
      conn.job = null;
      if (job !== null) job.done(-1, '');
      // A waiting request takes the place this connection leaves.
      if (!this.destroyed && this.waiting.length > 0 && this.open < this.maxSockets) this.start(this.connect(), this.waiting.shift());
    });
    return conn;
  }

  start(conn, job) {
    conn.job = job;
    conn.chunks = [];
    conn.size = 0;
    conn.socket.write(job.request);
  }

  onData(conn, chunk) {
    if (conn.job === null) return; // nothing asked: ignore (the server may close)
    conn.chunks.push(chunk);
    conn.size += chunk.length;
    const data = conn.chunks.length === 1 ? chunk : Buffer.concat(conn.chunks, conn.size);
    conn.chunks = [data];
    const end = data.indexOf(HEAD_END);
    if (end < 0) return;
    const head = data.toString('latin1', 0, end);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length === null) {
      // Not what this client speaks (chunked answers): fail the request, drop the connection.
      const job = conn.job;
      conn.job = null;
      conn.socket.destroy();
      job.done(-1, '');
      return;
    }
    const bodyEnd = end + 4 + Number(length[1]);
    if (data.length < bodyEnd) return;
    const status = Number(head.slice(9, 12));
    const text = data.toString('utf8', end + 4, bodyEnd);
    const job = conn.job;
    conn.job = null;
    conn.chunks = [];
    conn.size = 0;
    if (/\r\nconnection:\s*close/i.test(head)) conn.socket.end();
    else if (this.waiting.length > 0) this.start(conn, this.waiting.shift());
    else this.idle.push(conn);
    job.done(status, text);
  }
}
