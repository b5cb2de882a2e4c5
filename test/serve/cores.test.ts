import t from 'tap';
import { availableParallelism } from 'node:os';
import { parseCpuLimit, usableCores } from '../../src/serve/cores.js';

t.test('a cgroup CPU limit, v2 and v1', async (t) => {
  t.equal(parseCpuLimit('200000 100000\n'), 2, 'v2 cpu.max: 2 CPUs');
  t.equal(parseCpuLimit('150000 100000'), 1.5, 'fractions kept');
  t.equal(parseCpuLimit('max 100000\n'), null, 'v2 without a limit');
  t.equal(parseCpuLimit('400000\n', '100000\n'), 4, 'v1 quota and period');
  t.equal(parseCpuLimit('-1\n', '100000\n'), null, 'v1 without a limit');
  t.equal(parseCpuLimit(''), null, 'nothing readable');
  t.equal(parseCpuLimit('garbage here'), null);
});

t.test('usable cores: at least 1, at most what the process may run on', async (t) => {
  const n = usableCores();
  t.ok(Number.isInteger(n) && n >= 1 && n <= availableParallelism(), `${n} of ${availableParallelism()}`);
});
