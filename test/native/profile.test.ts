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

t.test('a short OpenMP spin is the default unless the user chose a wait policy', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const root = new URL('../../', import.meta.url).pathname;
  // Import the built library in a clean child: the test process may already have the variable.
  const probe = (env: Record<string, string>) => {
    const base = { ...process.env };
    delete base.GOMP_SPINCOUNT;
    delete base.OMP_WAIT_POLICY;
    const out = spawnSync(process.execPath, ['-e', `import(${JSON.stringify(`${root}dist/native.js`)}).then(() => console.log(process.env.GOMP_SPINCOUNT ?? 'unset'))`], {
      env: { ...base, ...env },
      encoding: 'utf8',
    });
    return out.stdout.trim();
  };
  t.equal(probe({}), '1000', 'set when the user set nothing');
  t.equal(probe({ GOMP_SPINCOUNT: '42' }), '42', 'a user value wins');
  t.equal(probe({ OMP_WAIT_POLICY: 'passive' }), 'unset', 'a user wait policy wins');
});
