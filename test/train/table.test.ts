import t from 'tap';
import * as ms from '../../src/index.js';

t.test('formatRateTable: one line per rate, cost relative to rate 1', async (t) => {
  const rows = [
    { rate: 1, accuracy: 0.9, loss: 0.3, macs: 400, params: 50 },
    { rate: 0.5, accuracy: 0.85, loss: 0.45, macs: 100, params: 13 },
  ];
  const lines = ms.formatRateTable(rows).split('\n');
  t.equal(lines.length, 3);
  t.match(lines[0], /^rate\s+accuracy\s+loss\s+MACs\/input\s+params\s+cost vs r=1$/);
  t.match(lines[1], /^1\.000\s+90\.00 %\s+0\.3000\s+400\s+50\s+1\.000$/);
  t.match(lines[2], /^0\.500\s+85\.00 %\s+0\.4500\s+100\s+13\s+0\.250$/);
});
