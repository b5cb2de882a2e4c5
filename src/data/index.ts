export { makeDataset, take, sample, pixelStats, standardize, type Dataset } from './dataset.js';
export { parseIdx, readIdxFile, readIdxDataset } from './idx.js';
export { parseCifarBatch, readCifar10 } from './cifar.js';
export { readDigits } from './digits.js';
export { DataLoader, type Batch, type LoaderOptions, type LoaderState } from './loader.js';
export { loadDataset, DATASETS, type DatasetName, type LoadDatasetOptions } from './registry.js';
export { charVocabulary, textDataset, decodeText, splitText, TextLoader, type TextDataset, type TextLoaderOptions } from './text.js';
