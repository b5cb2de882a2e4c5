export { checkRate, activeGroups, sliceWidth } from '../nn/width.js';
export { costs, sliceModel, traceAtRate, type CostRow, type SliceOptions } from './compact.js';
export { rateSchedule, type RateSchedule, type ScheduleName, type ScheduleOptions } from './schedules.js';
export { selectRate, profileLatency, setTrainedRates, trainedRatesOf, DEFAULT_RATES, type LatencyProfile, type RateBudget, type ProfileOptions } from './select.js';
export { slicedStep, countCorrect, type SlicedStepOptions, type RateLoss } from './step.js';
export { calibrateBatchNorm, useSwitchableBatchNorm, type CalibrateOptions } from './calibrate.js';
export { infer, releasePlans, type InferOptions } from './infer.js';
export { InferencePlan } from './plan.js';
export type { LayerUse } from '../nn/trace.js';
