export {
  KVCache,
  decode,
  generate,
  speculativeGenerate,
  samplingDistribution,
  drawFrom,
  type SamplingOptions,
  type GenerateOptions,
  type SpeculativeOptions,
  type GenerateStats,
} from './generate.js';
