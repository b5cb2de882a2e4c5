#!/usr/bin/env node
// TensorFlow.js peer: the wasm backend (XNNPACK kernels, WebAssembly SIMD)
// running, for each model and rate, the static narrower model of the paper's
// slicing. Each rate's layer shapes and weights come from our own compact
// copy, model.slice(rate) (so every width is ceil(C * k / G) by the library's
// rule and GroupNorm has the same group counts), transcribed from NCHW/OIHW to
// NHWC/HWIO and built from tfjs-core ops: conv2d with the same explicit
// padding, GroupNorm from moments (sums by matMul), relu, add, maxPool, mean
// and matMul.
// The multiply-accumulates of every built graph are checked against
// ms.costs() of our model at that rate.
//
//   node bench/peers/tfjs_wasm.mjs [--models mlp,resnet20 --quick --threads 2 --check --json]
//
// bench/models.mjs imports runTfjsPeer() from here. The .wasm binaries ship in
// the @tensorflow/tfjs-backend-wasm package and load from its dist/ folder:
// nothing is fetched at run time.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ms from 'modelslice';

export const defaultBuilders = {
  mlp: () => ({ model: ms.models.mlp({ inputs: 784, hidden: [1024, 1024], classes: 10 }), input: [784] }),
  resnet20: () => ({ model: ms.models.resnet({ depth: 20, classes: 10 }), input: [3, 32, 32] }),
  resnet56: () => ({ model: ms.models.resnet({ depth: 56, classes: 10 }), input: [3, 32, 32] }),
  resnet164: () => ({ model: ms.models.resnet({ depth: 164, classes: 10 }), input: [3, 32, 32] }),
  vgg13: () => ({ model: ms.models.vgg({ depth: 13, classes: 10 }), input: [3, 32, 32] }),
};

let loaded = null;

/**
 * Imports tfjs-core and the wasm backend and makes the backend current.
 * Throws an error with code 'ERR_MODULE_NOT_FOUND' when the packages are missing.
 * The backend's threaded build is not used under Node (tfjs turns
 * WASM_HAS_MULTITHREAD_SUPPORT off there: its pthread workers are made from
 * Blob URLs, which Node's worker_threads refuse), so `threads` is asked for
 * and the count the backend reports is returned.
 */
export async function loadTfjsWasm(threads = 1) {
  if (loaded) return loaded;
  const tf = await import('@tensorflow/tfjs-core');
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const require = createRequire(import.meta.url);
  const wasmDir = `${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`;
  const { version } = require('@tensorflow/tfjs-core/package.json');
  wasm.setWasmPaths(wasmDir);
  wasm.setThreadsCount(threads);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend failed to initialize');
  await tf.ready();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const multithread = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  const actual = wasm.getThreadsCount();
  const note =
    `SIMD ${simd ? 'on' : 'off'}, ${actual} thread${actual === 1 ? '' : 's'}` +
    (actual < threads ? `: ${multithread ? 'the backend gave fewer' : "the wasm backend's threaded build does not run in Node"}, asked for ${threads}` : '');
  loaded = { tf, version, simd, multithread, threads: actual, asked: threads, note, wasmDir };
  return loaded;
}

// --- transcription of a compact model --------------------------------------------

function convSpec(tf, c) {
  if (c.groups !== 1) throw new Error(`tfjs peer: grouped convolution (groups ${c.groups}) is not transcribed`);
  if (c.dilation.some((d) => d !== 1)) throw new Error('tfjs peer: dilated convolution is not transcribed');
  const [kh, kw] = c.kernelSize;
  const [ph, pw] = c.padding;
  return {
    kind: 'conv',
    inC: c.inChannels,
    outC: c.outChannels,
    k: [kh, kw],
    stride: c.stride,
    pad: ph === 0 && pw === 0 ? 'valid' : [[0, 0], [ph, ph], [pw, pw], [0, 0]],
    padHW: [ph, pw],
    w: tf.tidy(() => tf.transpose(tf.tensor4d(c.weight.data, [c.outChannels, c.inChannels, kh, kw]), [2, 3, 1, 0])), // OIHW -> HWIO
    b: c.bias ? tf.tensor1d(c.bias.data) : null,
  };
}

function linearSpec(tf, l) {
  return {
    kind: 'linear',
    inF: l.inFeatures,
    outF: l.outFeatures,
    w: tf.tidy(() => tf.transpose(tf.tensor2d(l.weight.data, [l.outFeatures, l.inFeatures]))), // [out, in] -> [in, out]
    b: l.bias ? tf.tensor1d(l.bias.data) : null,
  };
}

function normSpec(tf, n) {
  if (!(n instanceof ms.nn.GroupNorm)) throw new Error(`tfjs peer: only GroupNorm is transcribed, got ${n.constructor.name}`);
  const c = n.numChannels;
  // The group count our forward uses at this width (equal to numGroups in a compact copy).
  const g = ms.nn.scaledNormGroups(c, n.numGroups, c);
  const vec = (t, fill) => tf.tensor(t ? t.data : new Float32Array(c).fill(fill), [1, g, c / g]);
  return { kind: 'groupnorm', channels: c, groups: g, eps: n.eps, gamma: vec(n.weight, 1), beta: vec(n.bias, 0) };
}

/** The layer specs of a compact model, by kind: mlp, resnet or vgg. */
function transcribe(tf, model) {
  const kind = model.config?.kind;
  if (kind === 'mlp') {
    const layers = [];
    for (let i = 0; i < model.length; i++) {
      const m = model.at(i);
      if (m instanceof ms.nn.Linear) layers.push(linearSpec(tf, m));
      else if (m instanceof ms.nn.ReLU) layers[layers.length - 1].relu = true;
      else throw new Error(`tfjs peer: unexpected MLP layer ${m.constructor.name}`);
    }
    return { kind, layers };
  }
  if (kind === 'resnet') {
    const blocks = [];
    for (const stage of [model.layer1, model.layer2, model.layer3]) {
      for (let i = 0; i < stage.length; i++) {
        const b = stage.at(i);
        const steps = [];
        for (const [bn, conv] of [['bn1', 'conv1'], ['bn2', 'conv2'], ['bn3', 'conv3']]) {
          if (b[conv]) steps.push({ norm: normSpec(tf, b[bn]), conv: convSpec(tf, b[conv]) });
        }
        blocks.push({ steps, down: b.downsample ? convSpec(tf, b.downsample.at(0)) : null });
      }
    }
    return { kind, stem: convSpec(tf, model.conv1), blocks, norm: normSpec(tf, model.bn), fc: linearSpec(tf, model.fc) };
  }
  if (kind === 'vgg') {
    const layers = [];
    const f = model.features;
    for (let i = 0; i < f.length; i++) {
      const m = f.at(i);
      if (m instanceof ms.nn.Conv2d) layers.push(convSpec(tf, m));
      else if (m instanceof ms.nn.GroupNorm) layers.push(normSpec(tf, m));
      else if (m instanceof ms.nn.ReLU) layers[layers.length - 1].relu = true;
      else if (m instanceof ms.nn.MaxPool2d) {
        const k = typeof m.kernelSize === 'number' ? [m.kernelSize, m.kernelSize] : m.kernelSize;
        const s = m.options.stride ?? k;
        if (m.options.padding) throw new Error('tfjs peer: padded max pooling is not transcribed');
        layers.push({ kind: 'maxpool', k, stride: typeof s === 'number' ? [s, s] : s });
      } else throw new Error(`tfjs peer: unexpected VGG layer ${m.constructor.name}`);
    }
    return { kind, layers, fc: linearSpec(tf, model.classifier) };
  }
  throw new Error(`tfjs peer: cannot transcribe a model of kind ${String(kind)}`);
}

function disposeSpec(spec) {
  const seen = [];
  const walk = (v) => {
    if (v === null || typeof v !== 'object') return;
    if (typeof v.dispose === 'function' && typeof v.dataSync === 'function') seen.push(v);
    else Object.values(v).forEach(walk);
  };
  walk(spec);
  for (const t of seen) t.dispose();
}

/** Multiply-accumulates per input of the spec, by the same count as ms.costs (convolutions and linear layers). */
function specMacs(spec, inputShape) {
  let [, h, w] = inputShape;
  const conv = (c, hw) => {
    const oh = Math.floor((hw[0] + 2 * c.padHW[0] - c.k[0]) / c.stride[0]) + 1;
    const ow = Math.floor((hw[1] + 2 * c.padHW[1] - c.k[1]) / c.stride[1]) + 1;
    return { macs: oh * ow * c.outC * c.inC * c.k[0] * c.k[1], hw: [oh, ow] };
  };
  if (spec.kind === 'mlp') return spec.layers.reduce((n, l) => n + l.inF * l.outF, 0);
  let macs = 0;
  let hw = [h, w];
  if (spec.kind === 'resnet') {
    let r = conv(spec.stem, hw);
    macs += r.macs;
    hw = r.hw;
    for (const b of spec.blocks) {
      let bhw = hw;
      for (const s of b.steps) {
        r = conv(s.conv, bhw);
        macs += r.macs;
        bhw = r.hw;
      }
      if (b.down) macs += conv(b.down, hw).macs;
      hw = bhw;
    }
    return macs + spec.fc.inF * spec.fc.outF;
  }
  for (const l of spec.layers) {
    if (l.kind === 'conv') {
      const r = conv(l, hw);
      macs += r.macs;
      hw = r.hw;
    } else if (l.kind === 'maxpool') {
      [h, w] = hw;
      hw = [Math.floor((h - l.k[0]) / l.stride[0]) + 1, Math.floor((w - l.k[1]) / l.stride[1]) + 1];
    }
  }
  return macs + spec.fc.inF * spec.fc.outF;
}

// --- forward ----------------------------------------------------------------------

/**
 * GroupNorm over NHWC from the first two moments of each group, folded into
 * one scale and shift per (image, channel), then ReLU if asked. The moments'
 * sums over H*W are batched matMuls by a row of ones: on the wasm backend
 * tf.moments over axes [1, 2, 4] of the [N, H, W, G, C/G] view transposes the
 * tensor first and was 2-4x slower on ResNet stage-1 shapes at batch 64.
 */
function groupNorm(tf, x, n, relu) {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const g = n.groups;
    const x3 = tf.reshape(x, [b, h * w, c]);
    const avg = tf.fill([b, 1, h * w], 1 / ((h * w * c) / g));
    const groupSum = (t) => tf.sum(tf.reshape(tf.matMul(avg, t), [b, g, c / g]), 2, true);
    const mean = groupSum(x3);
    const variance = tf.relu(tf.sub(groupSum(tf.square(x3)), tf.square(mean)));
    const scale = tf.mul(n.gamma, tf.rsqrt(tf.add(variance, n.eps)));
    const shift = tf.sub(n.beta, tf.mul(mean, scale));
    const y = tf.add(tf.mul(x3, tf.reshape(scale, [b, 1, c])), tf.reshape(shift, [b, 1, c]));
    return tf.reshape(relu ? tf.relu(y) : y, [b, h, w, c]);
  });
}

function conv2d(tf, x, c) {
  if (c.b) return tf.fused.conv2d({ x, filter: c.w, strides: c.stride, pad: c.pad, bias: c.b, activation: c.relu ? 'relu' : 'linear' });
  const y = tf.conv2d(x, c.w, c.stride, c.pad);
  return c.relu ? tf.relu(y) : y;
}

function linear(tf, x, l) {
  return tf.fused.matMul({ a: x, b: l.w, bias: l.b ?? undefined, activation: l.relu ? 'relu' : 'linear' });
}

/** Runs `fn` on `h` with its intermediates freed, and frees `h` unless it is the caller's input. */
function step(tf, h, input, fn) {
  const out = tf.tidy(() => fn(h));
  if (h !== input) h.dispose();
  return out;
}

/** Logits [N, classes] for x (NHWC, or [N, features] for the MLP). */
export function forward(tf, spec, x) {
  let h = x;
  if (spec.kind === 'mlp') {
    for (const l of spec.layers) h = step(tf, h, x, (t) => linear(tf, t, l));
    return h;
  }
  if (spec.kind === 'resnet') {
    h = step(tf, h, x, (t) => conv2d(tf, t, spec.stem));
    for (const b of spec.blocks) {
      h = step(tf, h, x, (t) => {
        let o = t;
        for (const s of b.steps) o = conv2d(tf, groupNorm(tf, o, s.norm, true), s.conv);
        return tf.add(o, b.down ? conv2d(tf, t, b.down) : t);
      });
    }
    h = step(tf, h, x, (t) => groupNorm(tf, t, spec.norm, true));
  } else {
    for (const l of spec.layers) {
      if (l.kind === 'conv') h = step(tf, h, x, (t) => conv2d(tf, t, l));
      else if (l.kind === 'groupnorm') h = step(tf, h, x, (t) => groupNorm(tf, t, l, l.relu));
      else h = step(tf, h, x, (t) => tf.maxPool(t, l.k, l.stride, 'valid'));
    }
  }
  return step(tf, h, x, (t) => linear(tf, tf.mean(t, [1, 2]), spec.fc));
}

/** Input of our layout ([N, C, H, W] or [N, F]) as a tfjs tensor in NHWC. */
function toTf(tf, x) {
  if (x.shape.length !== 4) return tf.tensor(x.data, x.shape);
  return tf.tidy(() => tf.transpose(tf.tensor4d(x.data, x.shape), [0, 2, 3, 1]));
}

/**
 * The tfjs graph of `model` (one of ours, at full width) sliced at `rate`,
 * with its multiply-accumulates checked against ms.costs at that rate.
 */
export function buildAtRate(tf, model, inputShape, rate) {
  const compact = model.slice(rate);
  const spec = transcribe(tf, compact);
  const macs = specMacs(spec, inputShape);
  const ours = ms.costs(model, inputShape, [rate])[0].macs;
  if (macs !== ours) {
    disposeSpec(spec);
    throw new Error(`tfjs peer: ${model.config.kind} at rate ${rate} has ${macs} multiply-adds, ours ${ours}`);
  }
  spec.macs = macs;
  return { spec, compact };
}

// --- timing -----------------------------------------------------------------------

/** Best sample (ms) after one warm-up run, with the sample counts and times of bench/models.mjs. */
async function bestMs(run, { quick, heavy }) {
  const minSamples = quick ? 2 : heavy ? 3 : 8;
  const maxTime = (quick ? 0.5 : heavy ? 2 : 3) * 1e3;
  await run();
  let best = Infinity;
  const start = performance.now();
  for (let n = 0; n < 1000 && (n < minSamples || performance.now() - start < maxTime); n++) {
    const t0 = performance.now();
    await run();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/**
 * Times the tfjs wasm backend on each model, batch and rate.
 * Returns { tfjs, backend, simd, threads, asked, note, inference: [{ model, batch, rate, ms, macs }] }.
 */
export async function runTfjsPeer({ names, rates = [1, 0.75, 0.5, 0.25], batches = [1, 64], threads = 1, quick = false, builders = defaultBuilders, onRow } = {}) {
  const tfw = await loadTfjsWasm(threads);
  const { tf } = tfw;
  const inference = [];
  for (const name of names) {
    if (!builders[name]) throw new Error(`tfjs peer: unknown model ${name}`);
    const { model, input } = builders[name]();
    model.eval();
    for (const rate of rates) {
      const { spec } = buildAtRate(tf, model, input, rate);
      try {
        for (const batch of batches) {
          const x = toTf(tf, ms.randn([batch, ...input], { seed: 1 }));
          const t = await bestMs(
            async () => {
              const y = forward(tf, spec, x);
              await y.data();
              y.dispose();
            },
            { quick, heavy: batch >= 64 },
          );
          x.dispose();
          const row = { model: name, batch, rate, ms: t, macs: spec.macs };
          inference.push(row);
          onRow?.(row);
        }
      } finally {
        disposeSpec(spec);
      }
    }
  }
  return { tfjs: tfw.version, backend: 'wasm', simd: tfw.simd, threads: tfw.threads, asked: tfw.asked, note: tfw.note, inference };
}

/**
 * Compares the tfjs output with ours (ms.infer on the compact model and on
 * the full model at the rate): returns the largest |difference| relative to
 * the largest |logit|.
 */
export async function checkAgainstOurs({ name, rate, batch, builders = defaultBuilders }) {
  const { tf } = await loadTfjsWasm();
  const { model, input } = builders[name]();
  model.eval();
  // Non-trivial norm affines and biases, so that their transcription is tested too.
  let seed = 100;
  for (const [pname, p] of model.namedParameters()) {
    if (p.shape.length === 1) p.data.set(ms.randn(p.shape, { seed: seed++ }).data.map((v) => (pname.endsWith('weight') ? 1 + 0.2 * v : 0.2 * v)));
  }
  const x = ms.randn([batch, ...input], { seed: 7 });
  const { spec, compact } = buildAtRate(tf, model, input, rate);
  try {
    const xt = toTf(tf, x);
    const yt = forward(tf, spec, xt);
    const theirs = await yt.data();
    xt.dispose();
    yt.dispose();
    const oursCompact = ms.infer(compact, x).data;
    const oursSliced = ms.infer(model, x, { rate }).data;
    const rel = (a, b) => {
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        scale = Math.max(scale, Math.abs(a[i]));
      }
      return diff / scale;
    };
    if (theirs.length !== oursCompact.length) throw new Error(`tfjs peer check: ${theirs.length} outputs, ours ${oursCompact.length}`);
    return { model: name, rate, batch, macs: spec.macs, relVsCompact: rel(oursCompact, theirs), relVsSliced: rel(oursSliced, theirs) };
  } finally {
    disposeSpec(spec);
  }
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
  const jsonOut = args.includes('--json');
  const log = (...a) => {
    if (!jsonOut) console.log(...a);
  };
  const threads = Number(opt('threads', '2'));
  const names = opt('models', 'mlp,resnet20,resnet56,resnet164,vgg13').split(',');
  const rates = [1, 0.75, 0.5, 0.25];
  const tfw = await loadTfjsWasm(threads);
  const out = { checks: [] };
  if (args.includes('--check')) {
    log(`TensorFlow.js ${tfw.version} wasm backend against ms.infer, max |difference| / max |logit|:`);
    const cases = [
      { name: 'resnet20', rate: 0.5, batch: 2 },
      { name: 'mlp', rate: 0.5, batch: 2 },
      { name: 'resnet164', rate: 0.25, batch: 1 },
      { name: 'vgg13', rate: 0.75, batch: 1 },
    ];
    let ok = true;
    for (const c of cases) {
      const r = await checkAgainstOurs(c);
      out.checks.push(r);
      const pass = r.relVsCompact <= 1e-3 && r.relVsSliced <= 1e-3;
      ok &&= pass;
      log(
        `${c.name.padEnd(10)} rate ${String(c.rate).padEnd(5)} batch ${c.batch} (${(r.macs / 1e6).toFixed(1)}M multiply-adds, as ours): vs slice(rate) ${r.relVsCompact.toExponential(2)}, vs rate ${r.relVsSliced.toExponential(2)}  ${pass ? 'ok' : 'FAIL'}`,
      );
    }
    if (!ok) process.exitCode = 1;
  }
  if (!args.includes('--check') || args.includes('--models')) {
    log(`TensorFlow.js ${tfw.version} wasm backend (${tfw.note}), best sample (ms)`);
    log('model       batch   r=1      r=0.75   r=0.5    r=0.25   t(0.5)/t(1)  t(0.25)/t(1)');
    const res = await runTfjsPeer({ names, rates, threads, quick: args.includes('--quick') });
    for (const name of names) {
      for (const batch of [1, 64]) {
        const row = Object.fromEntries(res.inference.filter((r) => r.model === name && r.batch === batch).map((r) => [r.rate, r.ms]));
        log(
          `${name.padEnd(11)} ${String(batch).padStart(5)} ${rates.map((r) => row[r].toFixed(1).padStart(8)).join(' ')}   ${(row[0.5] / row[1]).toFixed(3).padStart(10)}  ${(row[0.25] / row[1]).toFixed(3).padStart(11)}`,
        );
      }
    }
    Object.assign(out, res);
  }
  if (jsonOut) console.log(JSON.stringify(out));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
