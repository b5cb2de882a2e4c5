import t from 'tap';
import * as ms from '../../src/index.js';

const LABELS = new Int32Array([0, 2, 1, 2, 0, 1, 1]);

function setup(seed = 1): { model: ms.models.Mlp; x: ms.Tensor } {
  ms.manualSeed(seed);
  const model = ms.models.mlp({ inputs: 6, hidden: [8, 8], classes: 3 });
  const x = ms.randn([LABELS.length, 6], { seed: seed + 100 });
  return { model, x };
}

function zeroGrad(model: ms.nn.Module): void {
  for (const p of model.parameters()) p.grad = null;
}

/** The parameters' gradients as float64 copies (zeros where there is none). */
function grads(model: ms.nn.Module): Float64Array[] {
  return model.parameters().map((p) => (p.grad ? Float64Array.from(p.grad.data) : new Float64Array(p.size)));
}

function addInto(acc: Float64Array[], g: Float64Array[]): void {
  acc.forEach((a, i) => g[i].forEach((v, j) => (a[j] += v)));
}

function maxRelDiff(a: Float64Array[], b: Float64Array[]): number {
  let e = 0;
  let scale = 1e-6;
  a.forEach((x, i) => x.forEach((v, j) => (scale = Math.max(scale, Math.abs(v), Math.abs(b[i][j])))));
  a.forEach((x, i) => x.forEach((v, j) => (e = Math.max(e, Math.abs(v - b[i][j])))));
  return e / scale;
}

/** Float64 reference: mean over rows of sum q (log q - log softmax(z)). */
function refKl(student: Float32Array, teacher: Float32Array, n: number, c: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    const lse = (row: Float32Array) => {
      let m = -Infinity;
      for (let j = 0; j < c; j++) m = Math.max(m, row[i * c + j]);
      let s = 0;
      for (let j = 0; j < c; j++) s += Math.exp(row[i * c + j] - m);
      return m + Math.log(s);
    };
    const ls = lse(student);
    const lt = lse(teacher);
    for (let j = 0; j < c; j++) {
      const logq = teacher[i * c + j] - lt;
      const logp = student[i * c + j] - ls;
      total += Math.exp(logq) * (logq - logp);
    }
  }
  return total / n;
}

function refCe(logits: Float32Array, labels: Int32Array, c: number): number {
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    let m = -Infinity;
    for (let j = 0; j < c; j++) m = Math.max(m, logits[i * c + j]);
    let s = 0;
    for (let j = 0; j < c; j++) s += Math.exp(logits[i * c + j] - m);
    total += m + Math.log(s) - logits[i * c + labels[i]];
  }
  return total / labels.length;
}

function refCorrect(logits: Float32Array, labels: Int32Array, c: number): number {
  let n = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (logits[i * c + j] > logits[i * c + best]) best = j;
    if (best === labels[i]) n++;
  }
  return n;
}

t.test('slicedStep sums the gradients of every rate and restores the rate', async (t) => {
  const { model, x } = setup();
  const rates = [0.25, 1, 0.5]; // unsorted on purpose
  // By hand: forward/backward per rate, gradients added up in float64.
  const expected = model.parameters().map((p) => new Float64Array(p.size));
  const expectedLoss = new Map<number, { loss: number; correct: number }>();
  for (const r of rates) {
    zeroGrad(model);
    model.setSliceRate(r);
    const logits = model.forward(x);
    const loss = ms.crossEntropy(logits, LABELS);
    loss.backward();
    addInto(expected, grads(model));
    expectedLoss.set(r, { loss: refCe(logits.data, LABELS, 3), correct: refCorrect(logits.data, LABELS, 3) });
  }
  zeroGrad(model);
  model.setSliceRate(0.75);
  const out = ms.slicedStep(model, x, LABELS, rates);
  t.equal(model.sliceRate, 0.75, 'the model keeps its rate');
  t.same(out.map((o) => o.rate), [1, 0.5, 0.25], 'one row per rate, widest first');
  for (const o of out) {
    t.ok(Math.abs(o.loss - expectedLoss.get(o.rate)!.loss) < 1e-5, `rate ${o.rate}: loss ${o.loss} vs ${expectedLoss.get(o.rate)!.loss}`);
    t.equal(o.correct, expectedLoss.get(o.rate)!.correct, `rate ${o.rate}: correct`);
  }
  const got = grads(model);
  t.ok(maxRelDiff(got, expected) < 1e-5, `summed gradients match (rel diff ${maxRelDiff(got, expected)})`);
  // It is a sum, not the last rate's gradient.
  const onlyWidest = model.parameters().map((p) => new Float64Array(p.size));
  zeroGrad(model);
  ms.slicedStep(model, x, LABELS, [1]);
  addInto(onlyWidest, grads(model));
  t.ok(maxRelDiff(got, onlyWidest) > 1e-3, 'differs from the widest rate alone');
  // Existing gradients are added to, not replaced (no optimizer step, no zeroing).
  const w0 = model.parameters()[0].data.slice();
  ms.slicedStep(model, x, LABELS, [1]);
  const twice = grads(model);
  onlyWidest.forEach((g) => g.forEach((_, j) => (g[j] *= 2)));
  t.ok(maxRelDiff(twice, onlyWidest) < 1e-5, 'accumulates into .grad');
  t.same(model.parameters()[0].data, w0, 'parameters are not updated');
});

t.test('slicedStep restores the rate when a pass throws, and checks its arguments', async (t) => {
  const { model, x } = setup();
  model.setSliceRate(0.5);
  t.throws(() => ms.slicedStep(model, x, new Int32Array([0, 1, 2, 3, 0, 1, 2]), [1, 0.25]), /crossEntropy/);
  t.equal(model.sliceRate, 0.5, 'rate restored after an error');
  t.throws(() => ms.slicedStep(model, x, LABELS, [1, 0]), { name: 'RangeError', message: /^slicedStep: slice rate/ });
  t.throws(() => ms.slicedStep(model, x, LABELS, [1, NaN]), /^slicedStep: slice rate/);
  t.throws(() => ms.slicedStep(model, x, LABELS, [1, 0.5], { distill: true, distillMix: 1.5 }), /^slicedStep: distillMix/);
  t.equal(model.sliceRate, 0.5);
});

t.test('in-place distillation: narrower rates learn from the detached widest predictions', async (t) => {
  const { model, x } = setup(3);
  const rates = [1, 0.5, 0.25];
  // Manual: CE at the widest, then KL(teacher || student) with an explicitly detached teacher.
  zeroGrad(model);
  model.setSliceRate(1);
  const teacherLogits = model.forward(x);
  ms.crossEntropy(teacherLogits, LABELS).backward();
  const teacherValues = teacherLogits.data.slice();
  const teacher = ms.tensor(ms.noGrad(() => ms.softmax(teacherLogits.detach())).data.slice(), [LABELS.length, 3]);
  const expectedLoss: number[] = [refCe(teacherValues, LABELS, 3)];
  const studentOnly = model.parameters().map((p) => new Float64Array(p.size));
  const widestOnly = grads(model);
  for (const r of rates.slice(1)) {
    const before = grads(model);
    model.setSliceRate(r);
    const logits = model.forward(x);
    ms.klDiv(ms.logSoftmax(logits), teacher).backward();
    const after = grads(model);
    after.forEach((g, i) => g.forEach((v, j) => (studentOnly[i][j] += v - before[i][j])));
    expectedLoss.push(refKl(logits.data, teacherValues, LABELS.length, 3));
  }
  const expected = grads(model);

  zeroGrad(model);
  model.setSliceRate(0.75);
  const out = ms.slicedStep(model, x, LABELS, rates, { distill: true });
  t.equal(model.sliceRate, 0.75, 'rate restored');
  out.forEach((o, i) => t.ok(Math.abs(o.loss - expectedLoss[i]) < 1e-5, `rate ${o.rate}: loss ${o.loss} vs reference ${expectedLoss[i]}`));
  t.ok(out[1].loss >= 0 && out[2].loss >= 0, 'KL divergences are non-negative');
  const got = grads(model);
  t.ok(maxRelDiff(got, expected) < 1e-5, `gradients match the manual computation (rel diff ${maxRelDiff(got, expected)})`);

  // Units only the widest rate uses (hidden units 4..7 of layer 0, beyond rate 0.5) get
  // exactly the label-loss gradient: nothing flows back into the teacher from the students.
  const w0 = 0; // '0.weight' [8, 6]
  const rowsTeacherOnly = got[w0].slice(4 * 6);
  const ceRows = widestOnly[w0].slice(4 * 6);
  let diff = 0;
  rowsTeacherOnly.forEach((v, j) => (diff = Math.max(diff, Math.abs(v - ceRows[j]))));
  t.ok(diff < 1e-7, `teacher-only weights carry only the widest rate's label gradient (diff ${diff})`);
  t.ok(studentOnly[w0].slice(4 * 6).every((v) => v === 0), 'students put nothing into teacher-only weights');
  t.ok(studentOnly[w0].slice(0, 4 * 6).some((v) => v !== 0), 'students do train their own prefix');

  // Without distill the narrower losses are label losses: different values.
  zeroGrad(model);
  const plain = ms.slicedStep(model, x, LABELS, rates);
  t.ok(Math.abs(plain[1].loss - out[1].loss) > 1e-4, 'distill changes the narrower losses');
  t.ok(Math.abs(plain[0].loss - out[0].loss) < 1e-6, 'the widest loss is the label loss either way');
});

t.test('distillMix blends the label loss into the narrower rates', async (t) => {
  const { model, x } = setup(5);
  const mix = 0.3;
  const rates = [1, 0.5];
  zeroGrad(model);
  model.setSliceRate(1);
  const tl = model.forward(x);
  ms.crossEntropy(tl, LABELS).backward();
  const teacher = ms.tensor(ms.noGrad(() => ms.softmax(tl.detach())).data.slice(), [LABELS.length, 3]);
  model.setSliceRate(0.5);
  const sl = model.forward(x);
  const kd = ms.klDiv(ms.logSoftmax(sl), teacher);
  const ce = ms.crossEntropy(sl, LABELS);
  const blended = ms.add(ms.mul(kd, ms.tensor([1 - mix], [])), ms.mul(ce, ms.tensor([mix], [])));
  blended.backward();
  const expected = grads(model);
  const expectedLoss = (1 - mix) * refKl(sl.data, tl.data, LABELS.length, 3) + mix * refCe(sl.data, LABELS, 3);

  zeroGrad(model);
  const out = ms.slicedStep(model, x, LABELS, rates, { distill: true, distillMix: mix });
  t.ok(Math.abs(out[1].loss - expectedLoss) < 1e-5, `blended loss ${out[1].loss} vs ${expectedLoss}`);
  const got = grads(model);
  t.ok(maxRelDiff(got, expected) < 1e-5, `gradients match (rel diff ${maxRelDiff(got, expected)})`);

  // mix = 1 is the label loss alone; mix = 0 is the teacher alone.
  zeroGrad(model);
  const labelsOnly = ms.slicedStep(model, x, LABELS, rates, { distill: true, distillMix: 1 });
  zeroGrad(model);
  const plain = ms.slicedStep(model, x, LABELS, rates);
  t.ok(Math.abs(labelsOnly[1].loss - plain[1].loss) < 1e-6, 'mix 1 = label loss');
  zeroGrad(model);
  const teacherOnly = ms.slicedStep(model, x, LABELS, rates, { distill: true, distillMix: 0 });
  zeroGrad(model);
  const dflt = ms.slicedStep(model, x, LABELS, rates, { distill: true });
  t.equal(teacherOnly[1].loss, dflt[1].loss, 'mix defaults to 0');
});

t.test('micro-batches: the chunks add up to the whole batch, with and without distillation', async (t) => {
  ms.manualSeed(3);
  const model = ms.models.resnet({ depth: 8, classes: 3 });
  const x = ms.randn([LABELS.length, 3, 8, 8], { seed: 9 });
  for (const distill of [false, true]) {
    zeroGrad(model);
    const whole = ms.slicedStep(model, x, LABELS, [1, 0.5], { distill });
    const g1 = grads(model);
    zeroGrad(model);
    const chunked = ms.slicedStep(model, x, LABELS, [1, 0.5], { distill, microBatch: 3 });
    const g2 = grads(model);
    t.ok(maxRelDiff(g1, g2) < 1e-5, `distill ${distill}: gradients agree (${maxRelDiff(g1, g2).toExponential(2)})`);
    whole.forEach((w, i) => {
      t.ok(Math.abs(w.loss - chunked[i].loss) < 1e-5 * Math.max(1, Math.abs(w.loss)), `distill ${distill}, rate ${w.rate}: loss ${w.loss} vs ${chunked[i].loss}`);
      t.equal(chunked[i].correct, w.correct);
    });
  }
  t.throws(() => ms.slicedStep(model, x, LABELS, [1], { microBatch: 0 }), /slicedStep: microBatch must be a positive integer/);
  const bn = ms.models.resnet({ depth: 8, classes: 3, norm: 'batch' });
  t.throws(() => ms.slicedStep(bn, x, LABELS, [1], { microBatch: 3 }), /needs a model without BatchNorm in training mode/);
});
