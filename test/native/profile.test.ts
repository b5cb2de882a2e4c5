import t from 'tap';
import * as ms from '../../src/index.js';

t.test('kernel profiling records calls and time per entry point, only while open', async (t) => {
  // Big enough (19M multiply-adds) that no clock could see it take no time at all.
  const x = ms.randn([8, 16, 32, 32], { seed: 1 });
  const w = ms.randn([16, 16, 3, 3], { seed: 2 });
  ms.conv2d(x, w, null); // not recorded
  const start = performance.now();
  ms.startKernelProfile();
  ms.relu(ms.conv2d(x, w, null, { padding: 1 }));
  ms.relu(x);
  const p = ms.stopKernelProfile();
  const wall = performance.now() - start;
  t.equal(p.conv2dForward.calls, 1);
  t.equal(p.relu.calls, 2);
  // The kernels' time is real (above zero) and inside the time the calls took.
  const kernels = p.conv2dForward.ms + p.relu.ms;
  t.ok(p.conv2dForward.ms > 0 && p.relu.ms > 0, `conv ${p.conv2dForward.ms} ms, relu ${p.relu.ms} ms recorded`);
  t.ok(kernels <= wall, `${kernels} ms in kernels within the ${wall} ms the calls took`);
  ms.relu(x);
  t.same(ms.stopKernelProfile(), {}, 'nothing recorded after stop');
});
