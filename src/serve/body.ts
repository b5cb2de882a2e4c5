// Request bodies of POST /predict: JSON {"inputs": [[...], ...]} or raw
// little-endian float32. Every rejection names what was wrong.
import type { IncomingMessage } from 'node:http';
import { endianness } from 'node:os';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface Inputs {
  data: Float32Array;
  count: number;
  /** The slice rate the client asked for (a JSON "rate" field), not yet snapped to a trained rate. */
  rate?: number;
}

/** A client's requested slice rate, from the JSON field or (as text) the header `where` names: a number in (0, 1]. */
export function checkRequestedRate(value: unknown, where: string, text = false): number {
  let rate = value;
  // A header is text; take only a plain decimal number, not '', 'Infinity' or '0x1'.
  if (text && typeof value === 'string') rate = /^\s*(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(value) ? Number(value) : NaN;
  if (typeof rate !== 'number' || !(rate > 0 && rate <= 1)) throw new HttpError(400, `${where} must be a slice rate in (0, 1], got ${JSON.stringify(value)}`);
  return rate;
}

/** Reads the whole body, refusing (413) more than maxBytes whether announced by Content-Length or not. */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(new HttpError(413, `body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        reject(new HttpError(413, `body exceeds the limit of ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)); // one chunk (most bodies): no copy
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new HttpError(400, `could not read the body: ${err.message}`));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function tooMany(count: number, maxInputs: number): HttpError {
  return new HttpError(413, `the body holds ${count} inputs; at most ${maxInputs} per request (the server's max batch)`);
}

const FLOAT32_MAX = 3.4028234663852886e38;

/** {"inputs": [[x, ...], ...]}: each input a flat array of `inputSize` finite numbers. */
export function parseJsonInputs(body: Buffer, inputSize: number, maxInputs: number): Inputs {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `the body is not valid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpError(400, 'the body must be a JSON object {"inputs": [[...], ...]}');
  const inputs = (parsed as { inputs?: unknown }).inputs;
  if (!Array.isArray(inputs)) throw new HttpError(400, '"inputs" must be an array of inputs, each an array of numbers');
  if (inputs.length === 0) throw new HttpError(400, '"inputs" is empty');
  if (inputs.length > maxInputs) throw tooMany(inputs.length, maxInputs);
  const data = new Float32Array(inputs.length * inputSize);
  for (let i = 0; i < inputs.length; i++) {
    const row = inputs[i] as unknown;
    if (!Array.isArray(row)) throw new HttpError(400, `inputs[${i}] must be an array of ${inputSize} numbers`);
    if (row.length !== inputSize) throw new HttpError(400, `inputs[${i}] has ${row.length} values; the model takes ${inputSize}`);
    for (let j = 0; j < inputSize; j++) {
      const v = row[j] as unknown;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new HttpError(400, `inputs[${i}][${j}] must be a finite number, got ${JSON.stringify(v)}`);
      // Inputs are float32: a finite double beyond its range would become Infinity here.
      const f = Math.fround(v);
      if (!Number.isFinite(f)) throw new HttpError(400, `inputs[${i}][${j}] = ${v} is beyond the float32 range (magnitude at most ${FLOAT32_MAX.toExponential(4)})`);
      data[i * inputSize + j] = f;
    }
  }
  const rate = (parsed as { rate?: unknown }).rate;
  if (rate === undefined) return { data, count: inputs.length };
  return { data, count: inputs.length, rate: checkRequestedRate(rate, '"rate"') };
}

/** Raw little-endian float32 values, a whole number of inputs. */
export function parseRawInputs(body: Buffer, inputSize: number, maxInputs: number): Inputs {
  const bytesPerInput = 4 * inputSize;
  if (body.length === 0) throw new HttpError(400, 'the body is empty');
  if (body.length % bytesPerInput !== 0) {
    throw new HttpError(400, `a raw body of ${body.length} bytes is not a whole number of inputs of ${inputSize} float32 values (${bytesPerInput} bytes each)`);
  }
  const count = body.length / bytesPerInput;
  if (count > maxInputs) throw tooMany(count, maxInputs);
  let data: Float32Array;
  if (endianness() === 'LE' && body.byteOffset % 4 === 0) {
    // A view, not a copy: the body is read once, into the batch (batcher.ts), and never written.
    data = new Float32Array(body.buffer, body.byteOffset, body.length / 4);
  } else if (endianness() === 'LE') {
    data = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
  } else {
    data = new Float32Array(count * inputSize);
    for (let i = 0; i < data.length; i++) data[i] = body.readFloatLE(4 * i);
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new HttpError(400, `value ${i} of the body (input ${Math.floor(i / inputSize)}) is not finite`);
  }
  return { data, count };
}
