// Pearson's chi-square goodness-of-fit test for the sampling tests: the p-value of observed
// counts against expected counts (cells expecting fewer than 5 pooled into one, as the
// test's approximation needs), from the regularised upper incomplete gamma function.

function logGamma(x: number): number {
  // Lanczos approximation (g = 7, 9 terms).
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = c[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Q(a, x) = Gamma(a, x) / Gamma(a): a series below a + 1, a continued fraction above. */
export function upperGammaRegularized(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - logGamma(a));
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000 && Math.abs(term) > 1e-15 * Math.abs(sum); n++) {
      term *= x / (a + n);
      sum += term;
    }
    return 1 - front * sum;
  }
  // Lentz's method for the continued fraction of Gamma(a, x).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return front * h;
}

/** The p-value of Pearson's chi-square statistic of `observed` against `expected` counts. */
export function chiSquarePValue(observed: readonly number[], expected: readonly number[]): number {
  const cells: [number, number][] = [];
  let poolO = 0;
  let poolE = 0;
  observed.forEach((o, i) => {
    if (expected[i] < 5) {
      poolO += o;
      poolE += expected[i];
    } else {
      cells.push([o, expected[i]]);
    }
  });
  if (poolE > 0) cells.push([poolO, poolE]);
  let stat = 0;
  for (const [o, e] of cells) stat += e > 0 ? ((o - e) * (o - e)) / e : o > 0 ? Infinity : 0;
  const df = cells.length - 1;
  return df < 1 ? 1 : upperGammaRegularized(df / 2, stat / 2);
}
