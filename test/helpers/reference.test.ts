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
