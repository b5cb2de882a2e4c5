import t from 'tap';
import { Counter, Gauge, Histogram, Registry } from '../../src/serve/metrics.js';
import { checkExposition } from './exposition.js';

t.test('a histogram keeps one series per label set, each a valid cumulative histogram', async (t) => {
  const registry = new Registry();
  const h = registry.add(new Histogram('req_seconds', 'Request time.', [0.1, 0.5, 0.1, Infinity], ['code']));
  registry.add(new Counter('req_total', 'Requests.', ['code'])).inc({ code: '200' }, 2);
  registry.add(new Gauge('rate', 'Rate.', () => 0.5));
  t.same(h.buckets, [0.1, 0.5], 'sorted, unique and finite; +Inf is implicit');
  t.notMatch(await registry.render(), /req_seconds_/, 'a labelled histogram has no series before its first observation');
  h.observe(0.05, { code: '200' });
  h.observe(0.3, { code: '200' });
  h.observe(2, { code: '503' });
  const text = await registry.render();
  const samples = checkExposition(text);
  // Label order is the client's business: compare label sets.
  const same = (a: Record<string, string>, b: Record<string, string>) => Object.keys(a).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => a[k] === v);
  const get = (name: string, labels: Record<string, string>) => samples.find((s) => s.name === name && same(s.labels, labels))?.value;
  t.equal(get('req_seconds_bucket', { code: '200', le: '0.1' }), 1);
  t.equal(get('req_seconds_bucket', { code: '200', le: '0.5' }), 2);
  t.equal(get('req_seconds_bucket', { code: '200', le: '+Inf' }), 2);
  t.equal(get('req_seconds_count', { code: '200' }), 2);
  t.equal(get('req_seconds_sum', { code: '200' }), 0.35);
  t.equal(get('req_seconds_bucket', { code: '503', le: '0.5' }), 0);
  t.equal(get('req_seconds_count', { code: '503' }), 1);
  t.equal(text.match(/# TYPE req_seconds histogram/g)?.length, 1, 'HELP and TYPE once per family');
  t.same([h.count, h.sum], [3, 2.35], 'totals over every label set');
});

t.test('an unlabelled histogram shows its zeros from the start', async (t) => {
  const registry = new Registry();
  registry.add(new Histogram('batch', 'Batch sizes.', [1, 2]));
  t.same(
    checkExposition(await registry.render()).map((s) => [s.name, s.labels.le, s.value]),
    [
      ['batch_bucket', '1', 0],
      ['batch_bucket', '2', 0],
      ['batch_bucket', '+Inf', 0],
      ['batch_sum', undefined, 0],
      ['batch_count', undefined, 0],
    ],
  );
});

t.test('the format checker refuses what promtool would', async (t) => {
  const ok = '# HELP a A.\n# TYPE a counter\na{x="1"} 1\n';
  t.ok(checkExposition(ok));
  t.throws(() => checkExposition(ok + '# TYPE a counter\n'), /TYPE for a twice/);
  t.throws(() => checkExposition('# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 1\n'), /not cumulative/);
  t.throws(() => checkExposition('# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 0\nh_count 1\n'), /no le="\+Inf"/);
  t.throws(() => checkExposition('# HELP a A.\n# TYPE a counter\na{x=1} 1\n'), /bad labels/);
});
