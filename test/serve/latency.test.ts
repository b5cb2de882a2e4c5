import t from 'tap';
import { monotoneProfile } from '../../src/serve/latency.js';

t.test('monotoneProfile: wider is never cheaper, larger batches never cheaper', async (t) => {
  const noisy = { byBatch: { 1: { 1: 2, 0.5: 3, 0.25: 1 }, 8: { 1: 1.5, 0.5: 4, 0.25: 0.5 } } };
  const fixed = monotoneProfile(noisy);
  t.same(fixed.byBatch[1], { 1: 3, 0.5: 3, 0.25: 1 });
  t.same(fixed.byBatch[8], { 1: 4, 0.5: 4, 0.25: 1 });
  t.same(noisy.byBatch[1], { 1: 2, 0.5: 3, 0.25: 1 }, 'the input is not modified');
  const clean = { byBatch: { 1: { 1: 5, 0.5: 2 }, 4: { 1: 9, 0.5: 3 } } };
  t.same(monotoneProfile(clean), clean, 'a consistent profile is unchanged');
});
