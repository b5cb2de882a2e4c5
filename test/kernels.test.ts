// The kernel declarations (src/kernels.ts) against the addon and against the
// calls the ops really make: every kernel entry point is declared, and every
// argument of every call a forward and backward pass records has the kind its
// declaration says, so plan passes can read calls by role.
import t from 'tap';
import { arg, argOrDefault, attr, buffers, KERNELS, withArgs } from '../src/kernels.js';
import { js } from '../src/js-kernels.js';
import { native } from '../src/native.js';
import { recordedCalls, recordPass } from './helpers/recorded-calls.js';

// Entry points that compute nothing a plan replays.
const CONTROL = ['getNumThreads', 'setNumThreads', 'kernelInfo', 'lastParallelThreads', 'convPaths', 'testThrowInKernel', 'planCompile', 'planRun'];

t.test('every kernel of the addon and of js-kernels.ts is declared, and nothing else', async (t) => {
  const functions = Object.entries(native as unknown as Record<string, unknown>)
    .filter(([, f]) => typeof f === 'function')
    .map(([name]) => name)
    .filter((name) => !CONTROL.includes(name))
    .sort();
  const declared = (runs: string) => [...KERNELS.values()].filter((k) => k.runs === runs).map((k) => k.name).sort();
  t.same(declared('native'), functions);
  t.same(declared('js'), Object.keys(js).sort());
});

t.test('every recorded call matches its declaration', async (t) => {
  const calls = recordedCalls();
  const names = new Set(calls.map((c) => c.name));
  for (const k of ['gemm', 'conv2dForward', 'conv2dBackwardInput', 'conv2dBackwardWeight', 'groupNormForward', 'groupNormBackward', 'channelMoments', 'channelAffine', 'batchNormBackward', 'poolForward', 'poolBackward', 'globalAvgPool', 'globalAvgPoolBackward', 'binary', 'softmax', 'softmaxBackward', 'relu', 'reluBackward', 'fill', 'copyLabels', 'nllLoss', 'nllLossBackward', 'sum', 'sumBackward', 'batchNormAffine', 'batchNormRunningStats']) {
    t.ok(names.has(k), `a pass called ${k}`);
  }
  let checked = 0;
  for (const c of calls) {
    t.equal(c.decl, KERNELS.get(c.name), `${c.name} carries its declaration`);
    if (c.args.length > c.decl.args.length) t.fail(`${c.name}: ${c.args.length} arguments, ${c.decl.args.length} declared`);
    c.decl.args.forEach((d, i) => {
      const v = c.args[i];
      const where = `${c.name} argument ${i} (${d.name})`;
      if (i >= c.args.length) {
        // Trailing arguments may be left out: optional flags and buffers.
        if (d.kind === 'buffer' && !d.optional) t.fail(`${where} is required`);
        return;
      }
      if (d.kind === 'attr' && !(typeof v === 'number' || typeof v === 'boolean')) t.fail(`${where} should be a number or flag, got ${typeof v}`);
      if (d.kind === 'fields' && !(Array.isArray(v) && v.length === d.fields.length)) t.fail(`${where} should hold ${d.fields.length} fields`);
      if (d.kind === 'indices' && !(Array.isArray(v) && v.every((n) => typeof n === 'number'))) t.fail(`${where} should be a list of numbers`);
      if (d.kind === 'buffer') {
        const typed = d.int32 === true ? v instanceof Int32Array : v instanceof Float32Array;
        const want = d.int32 === true ? 'an Int32Array' : 'a Float32Array';
        if (!(typed || (d.optional === true && (v === null || v === undefined)))) t.fail(`${where} should be ${want}${d.optional ? ' or null' : ''}`);
      }
      checked++;
    });
  }
  t.ok(checked > 500, `${calls.length} calls, ${checked} arguments checked`);
});

t.test('roles: arguments by name, access decided by attributes, calls rewritten by name', async (t) => {
  const x = new Float32Array(2 * 1 * 3 * 3).fill(1);
  const w = new Float32Array(2 * 1 * 1 * 1).fill(2);
  const y = new Float32Array(2 * 2 * 3 * 3);
  const params = [2, 1, 3, 3, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1];
  const [conv] = recordPass(() => native.conv2dForward(params, x, w, null, y));
  t.equal(arg(conv, 'y'), y);
  t.equal(arg(conv, 'bias'), null);
  t.equal(attr(conv, 'params', 'groups'), 1);
  t.equal(attr(conv, 'params', 'O'), 2);
  t.same(buffers(conv).map((b) => [b.name, b.access]), [['x', 'read'], ['w', 'read'], ['y', 'write']]);
  const folded = { ...conv, args: withArgs(conv, { accumulate: true }) };
  t.same(buffers(folded).map((b) => b.access), ['read', 'read', 'accumulate'], 'the accumulate flag makes y accumulated');
  conv.fn(...folded.args);
  conv.fn(...folded.args);
  t.ok(y.every((v) => v === 6), 'and the kernel does accumulate: 2 written, then 2 added twice');
  // The call left out its trailing arguments: a replacement past them writes them all out.
  t.equal(conv.args.length, 5, 'the op passed 5 of the declaration\'s arguments');
  const withResidual = withArgs(conv, { residual: x });
  t.same(
    withResidual.slice(5),
    [false, null, null, null, false, x],
    'withArgs: left-out arguments at their defaults (accumulate false, no map, inRelu false), then the residual',
  );
  t.equal(argOrDefault(conv, 'accumulate'), false, 'argOrDefault: a left-out flag is its default');
  t.equal(argOrDefault(conv, 'inScale'), null, 'argOrDefault: a left-out buffer is null');
  t.throws(() => withArgs(conv, { out: y }), /kernel conv2dForward has no argument 'out'/);
  const [gemm] = recordPass(() => native.gemm(false, false, 1, 1, 1, 1, x, 0, 1, x, 0, 1, 1, y, 0, 1));
  t.equal(buffers(gemm).find((b) => b.name === 'C')!.access, 'accumulate', 'gemm with beta 1 accumulates into C');
  const [gemm0] = recordPass(() => native.gemm(false, false, 1, 1, 1, 1, x, 0, 1, x, 0, 1, 0, y, 0, 1));
  t.equal(buffers(gemm0).find((b) => b.name === 'C')!.access, 'write', 'with beta 0 it writes');
  t.throws(() => arg(conv, 'out'), /kernel conv2dForward has no argument 'out'/);
  t.throws(() => attr(conv, 'params', 'stride'), /'params' has no field 'stride'/);
  t.throws(() => attr(conv, 'y', 'groups'), /'y' is not a group of attributes/);
  t.same(recordPass(() => native.getNumThreads()), [], 'queries are not recorded');
});
