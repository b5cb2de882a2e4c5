// Convolution widths benchmark (3x3 at 64/32/16 channels as prefixes of a [64, 64, 3, 3]
// weight, 1x1 64->256 and 256->64; batch 64, 32x32, NCHW). Run: node bench/conv-widths.mjs
// (T = threads, default 2; R = reps, default 15).
// Interleaved best-of-R: every rep runs every configuration once, so bursts of noise on the
// shared machine hit all configurations alike; the best per entry is reported.
import * as ms from '../dist/index.js';
import { native } from '../dist/native.js';
ms.setNumThreads(+(process.env.T || 2));
const R = +(process.env.R || 15);
const N = 64, H = 32, W = 32;
function rnd(n) { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = Math.random() - 0.5; return a; }
const cfgs = [];
function add(label, cin, cout, wIn, wOut, k, pad) {
  const x = ms.randn([N, cin, H, W]), w = ms.randn([wOut, wIn, k, k]);
  const params = [N, cin, H, W, cout, k, k, 1, 1, pad, pad, 1, 1, 1, wIn];
  const gy = rnd(N * cout * H * W), gx = new Float32Array(N * cin * H * W), gw = new Float32Array(wOut * wIn * k * k);
  const y = new Float32Array(N * cout * H * W);
  cfgs.push({ label, flops: 2 * N * H * W * cin * cout * k * k, best: {}, fns: {
    'fwd(ms.conv2d)': () => ms.conv2d(x, w, null, { padding: pad, outWidth: cout }),
    'fwd(native)': () => native.conv2dForward(params, x.data, w.data, null, y),
    'bwdX': () => native.conv2dBackwardInput(params, gy, w.data, gx),
    'bwdW': () => native.conv2dBackwardWeight(params, gy, x.data, gw),
  } });
}
for (const c of [64, 32, 16]) add(`3x3 ${c}->${c}`, c, c, 64, 64, 3, 1);
add('1x1 64->256', 64, 256, 64, 256, 1, 0);
add('1x1 256->64', 256, 64, 256, 64, 1, 0);
for (const c of cfgs) for (const f of Object.values(c.fns)) f();
for (let r = 0; r < R; r++)
  for (const c of cfgs)
    for (const [name, f] of Object.entries(c.fns)) {
      const t0 = process.hrtime.bigint(); f(); const t = Number(process.hrtime.bigint() - t0) / 1e6;
      c.best[name] = Math.min(c.best[name] ?? 1e9, t);
    }
for (const c of cfgs) console.log(c.label.padEnd(12) + Object.entries(c.best).map(([n, t]) => ` | ${n} ${t.toFixed(2)} ms ${(c.flops / t / 1e6).toFixed(0)} GF`).join(''));
for (const n of Object.keys(cfgs[0].best)) console.log(`ratios ${n}: 32/64 ${(cfgs[1].best[n] / cfgs[0].best[n]).toFixed(3)} (limit 0.300), 16/64 ${(cfgs[2].best[n] / cfgs[0].best[n]).toFixed(3)} (limit 0.075)`);
