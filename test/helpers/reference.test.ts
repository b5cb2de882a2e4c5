// The comparison helper every op test relies on must be able to fail.
import t from 'tap';
import { assertClose, type Asserter } from './reference.js';

function recorder(): Asserter & { results: [boolean, string][] } {
  const results: [boolean, string][] = [];
  return {
    results,
    ok(cond: unknown, message: string) {
      results.push([Boolean(cond), message]);
      return Boolean(cond);
    },
  };
}

t.test('assertClose fails when it compares nothing, unless told an empty result is expected', async (t) => {
  const r = recorder();
  t.equal(assertClose(r, [1, 2], [5, 6], 'no indices', { indices: [] }), false);
  t.match(r.results[0][1], /no indices: nothing compared \(no indices were given\)/);
  t.equal(assertClose(r, [], [], 'empty arrays'), false);
  t.match(r.results[1][1], /empty arrays: nothing compared \(the arrays are empty\)/);
  t.equal(assertClose(r, [], [], 'an empty tensor', { allowEmpty: true }), true, 'allowed when asked');
});

t.test('assertClose fails outside the tolerance and passes inside it', async (t) => {
  const r = recorder();
  t.equal(assertClose(r, [1, 2.1], [1, 2], 'far'), false);
  t.match(r.results[0][1], /1 element\(s\) out of tolerance; worst at \[1\]/);
  t.equal(assertClose(r, [1, 2.1], [1, 2], 'only the close one', { indices: [0] }), true);
  t.equal(assertClose(r, [1, 2 + 1e-7], [1, 2], 'close'), true);
  t.equal(assertClose(r, [1, NaN], [1, 2], 'NaN'), false);
  t.equal(assertClose(r, [1], [1, 2], 'lengths'), false);
});

t.test('chiSquarePValue: known quantiles of the chi-square distribution', async (t) => {
  const { chiSquarePValue, upperGammaRegularized } = await import('./stats.js');
  // P(X > 3.841) = 0.05 for 1 degree of freedom; P(X > 30.578) = 0.01 for 15; P(X > 11.07) = 0.05 for 5.
  t.ok(Math.abs(upperGammaRegularized(0.5, 3.841 / 2) - 0.05) < 2e-4);
  t.ok(Math.abs(upperGammaRegularized(7.5, 30.578 / 2) - 0.01) < 2e-4);
  t.ok(Math.abs(upperGammaRegularized(2.5, 11.07 / 2) - 0.05) < 2e-4);
  t.equal(chiSquarePValue([10, 10, 10], [10, 10, 10]), 1, 'a perfect fit');
  t.ok(chiSquarePValue([30, 0, 0], [10, 10, 10]) < 1e-6, 'a bad fit');
});
