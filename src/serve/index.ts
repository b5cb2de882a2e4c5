export { Predictor, type PredictorOptions, type PredictOptions, type Prediction } from './predictor.js';
export { serve, type ServeOptions, type ServerHandle, type ServerMetrics, type ServedBatch } from './server.js';
export { RateController, type ControllerOptions, type QueueState, type RateEstimate, type Decision } from './controller.js';
export { estimateLatencyMs } from './latency.js';
