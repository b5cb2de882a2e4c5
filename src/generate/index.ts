export { KVCache, decode, type DecodeOptions } from './decode.js';
export {
  generate,
  speculativeGenerate,
  samplingDistribution,
  drawFrom,
  type SamplingOptions,
  type GenerateOptions,
  type SpeculativeOptions,
  type GenerateStats,
} from './generate.js';
