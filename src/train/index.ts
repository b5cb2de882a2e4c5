export { fit, clipGradNorm, type FitOptions, type FitResult, type FitCallbacks, type BatchInfo, type EpochRecord } from './fit.js';
export { evaluate, type EvalRow, type EvaluateOptions, type BatchSource } from './evaluate.js';
export { formatRateTable, rateTradeoffSvg } from './plot.js';
