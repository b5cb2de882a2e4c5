export { save, load, loadFile, FORMAT, type SaveOptions, type LoadedFile, type Preprocess } from './model-file.js';
export { parseSafetensors, serializeSafetensors, writeFileAtomic, type SafetensorsFile } from './safetensors.js';
export { loadTorchWeights, loadTorchStateDict, type TorchImportOptions } from './torch.js';
export { exportOnnx, onnxBytes, type ExportOnnxOptions } from './onnx.js';
