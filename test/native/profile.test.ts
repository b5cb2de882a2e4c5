import t from 'tap';
import * as ms from '../../src/index.js';

t.test('kernel profiling records calls and time per entry point, only while open', async (t) => {
  const x = ms.randn([4, 3, 8, 8], { seed: 1 });
  const w = ms.randn([5, 3, 3, 3], { seed: 2 });
  ms.conv2d(x, w, null); // not recorded
  ms.startKernelProfile();
  ms.relu(ms.conv2d(x, w, null, { padding: 1 }));
  ms.relu(x);
  const p = ms.stopKernelProfile();
  t.equal(p.conv2dForward.calls, 1);
  t.equal(p.relu.calls, 2);
  t.ok(p.conv2dForward.ms >= 0);
  ms.relu(x);
  t.same(ms.stopKernelProfile(), {}, 'nothing recorded after stop');
});
