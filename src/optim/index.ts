export { Optimizer, type OptimizerState } from './optimizer.js';
export { SGD, type SgdOptions } from './sgd.js';
export { Adam, AdamW, type AdamOptions } from './adam.js';
export { LrSchedule, MultiStepLR, CosineLR, WarmupLR, type LrScheduleState } from './lr.js';
