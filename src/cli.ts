// modelslice train | eval | serve | export: reproducible runs from flags. With --json
// the last line printed is one JSON object.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { DataLoader } from './data/loader.js';
import { decodeText, splitText, TextLoader, textDataset } from './data/text.js';
import { generate, speculativeGenerate } from './generate/generate.js';
import { pixelStats, sample, standardize, type Dataset } from './data/dataset.js';
import { DATASETS, loadDataset, type DatasetName } from './data/registry.js';
import { load, save } from './io/model-file.js';
import { exportOnnx } from './io/onnx.js';
import { checkModelInput, modelInputShape } from './nn/input-shape.js';
import type { BuiltModel } from './models/build.js';
import { mlp } from './models/mlp.js';
import { resnet, resnetBlock } from './models/resnet.js';
import { vgg, vggDepth } from './models/vgg.js';
import { Transformer, transformer } from './models/transformer.js';
import { Adam, AdamW } from './optim/adam.js';
import { CosineLR, MultiStepLR, WarmupLR, type LrSchedule } from './optim/lr.js';
import type { Optimizer } from './optim/optimizer.js';
import { SGD } from './optim/sgd.js';
import { manualSeed } from './random.js';
import type { ScheduleName } from './slicing/schedules.js';
import { setNumThreads } from './threads.js';
import { evaluate } from './train/evaluate.js';
import { fit } from './train/fit.js';
import { formatRateTable, rateTradeoffSvg } from './train/plot.js';
import { defaultWorkers, serve } from './serve/server.js';

const USAGE = `usage: modelslice <command> [flags]

commands:
  train   train a sliceable model and print accuracy and cost per rate
  eval    evaluate a saved model at each rate
  serve   serve a saved model over HTTP, lowering the rate under load to meet a latency SLO
  export  write the compact model at one rate as ONNX
  generate  continue a text with a saved language model (--model transformer)

train flags:
  --model mlp|resnet|vgg|transformer  architecture (default mlp)
  --hidden 1024,1024         MLP hidden sizes (default 256,256)
  --depth N                  ResNet depth (6n+2 basic, 9n+2 bottleneck) or VGG 11/13/16/19
  --norm group|batch         normalization of ResNet/VGG (default group)
  --dataset NAME             mnist (built-in digits, default), fashion-mnist, cifar10, or text
                             (a character-level language model of --data-file; needs --model transformer)
  --data-dir DIR             folder of the dataset's files
  --data-file FILE           the text of --dataset text (UTF-8; the last 10% is the validation set)
  --d-model N, --heads N, --layers N, --ffn N, --context N
                             transformer shape (default 256, 8, 4, 4 x d-model, 128)
  --batches-per-epoch N      text: random windows per epoch, in batches (default: one pass of the text)
  --limit N                  use only the first N training images
  --rates 1,0.75,0.5,0.25    rates to train and report
  --schedule NAME            random | random_min_max (default) | round_robin | uniform
  --schedule-k N             random rates per batch besides min/max (default 1)
  --distill                  in-place distillation from the widest rate
  --epochs N                 (default 5)
  --batch-size N             (default 128; text 32)
  --optimizer sgd|adam|adamw (default sgd; text adamw)
  --lr X                     (default 0.05; text 1e-3)
  --momentum X               SGD momentum (default 0.9)
  --nesterov                 Nesterov momentum
  --weight-decay X           (default 5e-4; text 0.1)
  --lr-milestones 5,7        multiply the rate by 0.1 at these epochs
  --cosine                   cosine learning-rate decay
  --warmup N                 linear warm-up over N epochs
  --clip X                   clip the gradients' global norm at X (text: default 1)
  --augment                  random crop (padding 4) and flip (for CIFAR)
  --seed N                   (default 1)
  --threads N                kernel threads
  --out FILE                 save the model (safetensors) and a checkpoint each epoch; FILE.svg plots the trade-off
  --resume FILE              continue a run from its checkpoint
  --json                     the last line printed is one JSON object

eval flags:
  --checkpoint FILE          (required) the saved model
  --dataset NAME             (default: the dataset the model file records it was trained on)
  --rates 1,0.5              (default: the model's trained rates)
  --data-dir, --batch-size, --threads, --json as above
  --data-file FILE           a language model: evaluated on the last 10% of FILE's text

export flags:
  --checkpoint FILE          (required) the saved model
  --rate X                   slice rate to export, in (0, 1] (default 1)
  --out FILE                 (required) the .onnx file to write
  --input-shape 1,3,32,32    input shape with the batch (the batch stays dynamic;
                             default: 1 and the model's recorded input shape)
  --json                     print {"path", "rate", "bytes", "inputShape"}

generate flags:
  --checkpoint FILE          (required) a saved language model
  --prompt TEXT              (required) the text to continue, in the model's vocabulary
  --max-tokens N             tokens to generate (default 200)
  --temperature X            0 is greedy (default 1)
  --top-k N                  sample among the N most likely tokens
  --rate X                   slice rate to generate at (default 1)
  --speculative              the --draft-rate slice drafts up to --draft-tokens tokens (default 0.25, 6)
                             and rate 1 verifies them in one pass: rate 1's output, faster
  --draft-min-prob P         the draft stops after a token it gave less than P (default 0.3; 0: never)
  --stop TEXT                stop once TEXT has been generated
  --seed N                   (default: a fresh seed each run)
  --json                     print {"text", "tokens", "seconds", "tokensPerSecond", "passes", ...}

serve flags:
  --checkpoint FILE          (required) the saved model
  --port N                   (required) TCP port (0 picks a free one)
  --slo-ms X                 (required) latency objective per request, ms
  --host ADDR                interface to listen on (default 127.0.0.1)
  --max-batch N              most inputs per forward pass and per request (default 32)
  --max-queue N              most inputs waiting; beyond it 503 + Retry-After (default: what
                             the workers serve in half the SLO at the narrowest rate)
  --max-body-bytes N         largest request body (default: room for max-batch JSON inputs)
  --workers N                predictor worker threads in this process (default: one per core, at most 4)
  --rate X                   serve at this fixed rate in (0, 1] instead of adapting (a request's
                             own "rate" or X-Slice-Rate still wins)
  --threads N                kernel threads per worker (default: the cores shared out between the workers)
  --input-shape 1,28,28      shape of one input, without the batch (default: the model's recorded one)
  --drain-delay-ms N         on SIGTERM, keep serving this long with GET /readyz answering 503
                             before closing the listener, so a load balancer moves away first
                             (default 0; behind a balancer, more than its check interval x fall)
  --json                     print {"url", "pid"} when listening and a JSON summary on exit
  POST /predict {"inputs": [[...], ...], "rate"?: r} or raw little-endian float32 (X-Slice-Rate: r
  to pin a rate) -> {"classes": [...], "rate": r}; a language model also takes POST /generate
  {"prompt": "...", "maxTokens"?: 128, "temperature"?: 1, "topK"?: k, "stop"?: [...], "seed"?: n,
  "rate"?: r, "stream"?: true} -> {"text", "tokens", "rate", "ms"} (streamed: NDJSON, a
  {"token"} line per token, then {"done": true, ...}); GET /healthz (liveness); GET /readyz
  (readiness: 503 while draining); GET /metrics (Prometheus).
  SIGINT/SIGTERM finish queued requests (up to 30 s), then exit 0; a second signal exits at once.
  Under npx or npm run, npm exiting stops the server the same way.
`;

const options = {
  model: { type: 'string' },
  hidden: { type: 'string' },
  depth: { type: 'string' },
  norm: { type: 'string' },
  dataset: { type: 'string' },
  'data-dir': { type: 'string' },
  'data-file': { type: 'string' },
  'd-model': { type: 'string' },
  heads: { type: 'string' },
  layers: { type: 'string' },
  ffn: { type: 'string' },
  context: { type: 'string' },
  'batches-per-epoch': { type: 'string' },
  prompt: { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  speculative: { type: 'boolean' },
  'draft-rate': { type: 'string' },
  'draft-tokens': { type: 'string' },
  'draft-min-prob': { type: 'string' },
  stop: { type: 'string' },
  limit: { type: 'string' },
  rates: { type: 'string' },
  schedule: { type: 'string' },
  'schedule-k': { type: 'string' },
  distill: { type: 'boolean' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  optimizer: { type: 'string' },
  lr: { type: 'string' },
  momentum: { type: 'string' },
  nesterov: { type: 'boolean' },
  'weight-decay': { type: 'string' },
  'lr-milestones': { type: 'string' },
  cosine: { type: 'boolean' },
  warmup: { type: 'string' },
  clip: { type: 'string' },
  augment: { type: 'boolean' },
  seed: { type: 'string' },
  threads: { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'string' },
  checkpoint: { type: 'string' },
  'input-shape': { type: 'string' },
  port: { type: 'string' },
  'slo-ms': { type: 'string' },
  host: { type: 'string' },
  'max-batch': { type: 'string' },
  'max-queue': { type: 'string' },
  'drain-delay-ms': { type: 'string' },
  'max-body-bytes': { type: 'string' },
  workers: { type: 'string' },
  rate: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Flags = Partial<Record<keyof typeof options, string | boolean>>;

class UsageError extends Error {}

function num(flags: Flags, name: keyof typeof options, fallback: number, integer = false): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'}, got ${String(raw)}`);
  }
  return v;
}

function list(flags: Flags, name: keyof typeof options, fallback: number[]): number[] {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const values = String(raw).split(',').map((s) => Number(s.trim()));
  if (values.some((v) => !Number.isFinite(v))) throw new UsageError(`--${name} must be a comma-separated list of numbers, got ${String(raw)}`);
  return values;
}

function str<T extends string>(flags: Flags, name: keyof typeof options, allowed: readonly T[], fallback: T): T {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  if (!allowed.includes(raw as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got ${String(raw)}`);
  return raw as T;
}

const MODELS = ['mlp', 'resnet', 'vgg', 'transformer'] as const;
/** The image datasets, and `text`: a language model of --data-file. */
const CLI_DATASETS = [...DATASETS, 'text'] as const;

/** --model and --dataset, each defaulting from the other: a transformer learns text, the rest images. */
function modelAndData(flags: Flags): { kind: (typeof MODELS)[number]; dataset: (typeof CLI_DATASETS)[number] } {
  const kind = str(flags, 'model', MODELS, flags.dataset === 'text' ? 'transformer' : 'mlp');
  const dataset = str(flags, 'dataset', CLI_DATASETS, kind === 'transformer' ? 'text' : 'mnist');
  if ((dataset === 'text') !== (kind === 'transformer')) {
    throw new UsageError(`--model ${kind} does not fit --dataset ${dataset}: a transformer learns --dataset text, the other models images`);
  }
  return { kind, dataset };
}

async function loadData(flags: Flags, split: 'train' | 'test', fallback: DatasetName = 'mnist'): Promise<Dataset> {
  const name = str(flags, 'dataset', DATASETS, fallback) as DatasetName;
  const dataDir = flags['data-dir'] as string | undefined;
  return loadDataset(name, split, dataDir === undefined ? {} : { dataDir });
}

function buildModel(flags: Flags, ds: Dataset): BuiltModel {
  const kind = str(flags, 'model', MODELS, 'mlp');
  if (kind === 'transformer') throw new UsageError('--model transformer takes --dataset text (a language model of --data-file)');
  const [c, h, w] = ds.shape;
  const norm = str(flags, 'norm', ['group', 'batch'] as const, 'group');
  // The model records the data's shape, so serve and export take these inputs.
  const inputShape = [c, h, w];
  if (kind === 'mlp') return mlp({ inputShape, hidden: list(flags, 'hidden', [256, 256]), classes: ds.classes });
  if (kind === 'resnet') return resnet({ depth: num(flags, 'depth', 20, true), classes: ds.classes, inputShape, norm });
  return vgg({ depth: num(flags, 'depth', 11, true), classes: ds.classes, inputShape, norm });
}

/** --input-shape as positive integers; `withBatch` says whether the first one is the batch. */
function shapeFlag(flags: Flags, withBatch: boolean): number[] | undefined {
  if (flags['input-shape'] === undefined) return undefined;
  const shape = list(flags, 'input-shape', []);
  if (shape.length < (withBatch ? 2 : 1) || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new UsageError(`--input-shape must be positive integers${withBatch ? ' with the batch first' : ' (one input, without the batch)'}, got ${String(flags['input-shape'])}`);
  }
  return shape;
}

/**
 * The depth against the models' own rules (resnetBlock, vggDepth), checked here
 * because the models are built only once the data has loaded.
 */
function checkDepth(flags: Flags): void {
  if (flags.depth === undefined) return;
  const depth = num(flags, 'depth', 0, true);
  const kind = str(flags, 'model', MODELS, 'mlp');
  try {
    if (kind === 'vgg') vggDepth('--depth', depth);
    if (kind === 'resnet') resnetBlock('--depth', depth);
  } catch (err) {
    throw new UsageError(`--depth ${depth} does not fit --model ${kind}: ${(err as Error).message.replace(/^--depth: /, '')}`);
  }
}

/** Checks every flag's form and range before any data is read, so a bad flag fails fast with exit 2. */
function checkFlags(flags: Flags): void {
  const atLeast = (name: keyof typeof options, min: number, integer: boolean, strict = false) => {
    if (flags[name] === undefined) return;
    const v = num(flags, name, 0, integer);
    if (strict ? !(v > min) : !(v >= min)) throw new UsageError(`--${name} must be ${strict ? 'greater than' : 'at least'} ${min}, got ${String(flags[name])}`);
  };
  atLeast('epochs', 0, true);
  atLeast('limit', 1, true);
  atLeast('batch-size', 1, true);
  atLeast('schedule-k', 0, true);
  atLeast('threads', 1, true);
  atLeast('depth', 1, true);
  atLeast('lr', 0, false);
  atLeast('momentum', 0, false);
  atLeast('weight-decay', 0, false);
  atLeast('warmup', 0, false);
  atLeast('clip', 0, false, true);
  num(flags, 'seed', 1, true);
  checkDepth(flags);
  if (flags.rate !== undefined) {
    const rate = num(flags, 'rate', 1);
    if (!(rate > 0 && rate <= 1)) throw new UsageError(`--rate must be a slice rate in (0, 1], got ${String(flags.rate)}`);
  }
  for (const r of list(flags, 'rates', [1])) {
    if (!(r > 0 && r <= 1)) throw new UsageError(`--rates must be slice rates in (0, 1], got ${String(flags.rates)}`);
  }
  if (list(flags, 'hidden', [1]).some((h) => !Number.isInteger(h) || h < 1)) throw new UsageError(`--hidden must be positive integers, got ${String(flags.hidden)}`);
  if (list(flags, 'lr-milestones', []).some((m) => !Number.isInteger(m) || m < 0)) {
    throw new UsageError(`--lr-milestones must be non-negative integer epochs, got ${String(flags['lr-milestones'])}`);
  }
  str(flags, 'norm', ['group', 'batch'] as const, 'group');
  modelAndData(flags);
  for (const name of ['d-model', 'heads', 'layers', 'ffn', 'context', 'batches-per-epoch'] as const) atLeast(name, 1, true);
  str(flags, 'optimizer', ['sgd', 'adam', 'adamw'] as const, 'sgd');
  str(flags, 'schedule', ['random', 'random_min_max', 'round_robin', 'uniform'] as const, 'random_min_max');
}

type Log = (s: string) => void;

/** Evaluation progress: a line at most once a second, and always the last one. */
function evalProgress(progress: Log, total: number, unit = 'images'): (inputs: number) => void {
  const started = performance.now();
  let shown = -Infinity;
  return (inputs) => {
    const now = performance.now();
    if (inputs < total && now - shown < 1000) return;
    shown = now;
    progress(`evaluated ${inputs}/${total} ${unit}, ${((now - started) / 1000).toFixed(1)} s`);
  };
}

/** What a training run learns from and is evaluated on. */
interface TrainData {
  model: BuiltModel;
  loader: DataLoader | TextLoader;
  testLoader: DataLoader | TextLoader;
  /** "60000 fashion-mnist images" */
  what: string;
  /** "test set (10000 images)" */
  test: string;
  /** "10000 test images" */
  evaluating: string;
  testCount: number;
  /** What a batch's labels count: images, or characters predicted. */
  unit: string;
  title: string;
}

async function imageData(flags: Flags, seed: number, progress: Log): Promise<TrainData> {
  const dataName = str(flags, 'dataset', DATASETS, 'mnist');
  progress(`loading ${dataName}: train and test sets`);
  const loadStarted = performance.now();
  const rawTrain = await loadData(flags, 'train');
  const limit = num(flags, 'limit', rawTrain.length, true);
  const trainSet0 = limit < rawTrain.length ? sample(rawTrain, limit, seed) : rawTrain;
  const stats = pixelStats(trainSet0);
  const trainSet = standardize(trainSet0, stats);
  const testSet = standardize(await loadData(flags, 'test'), stats);
  progress(`loaded ${trainSet.length} training and ${testSet.length} test images in ${((performance.now() - loadStarted) / 1000).toFixed(1)} s`);
  const batchSize = num(flags, 'batch-size', 128, true);
  const augment = flags.augment === true;
  const model = buildModel(flags, trainSet);
  model.preprocess = stats;
  model.dataset = dataName;
  return {
    model,
    loader: new DataLoader(trainSet, { batchSize, shuffle: true, seed, cropPadding: augment ? 4 : 0, horizontalFlip: augment }),
    testLoader: new DataLoader(testSet, { batchSize: 500 }),
    what: `${trainSet.length} ${dataName} images`,
    test: `test set (${testSet.length} images)`,
    evaluating: `${testSet.length} test images`,
    testCount: testSet.length,
    unit: 'images',
    title: `${model.config!.kind} on ${testSet.name}: accuracy and cost per slice rate`,
  };
}

/** --data-file's text, or an error that names the file. */
async function readTextFile(flags: Flags): Promise<{ path: string; text: string }> {
  const path = flags['data-file'] as string | undefined;
  if (path === undefined) throw new UsageError('--dataset text needs --data-file FILE (a UTF-8 text, e.g. bench/data/tinyshakespeare.txt)');
  try {
    return { path, text: await readFile(path, 'utf8') };
  } catch (err) {
    throw new Error(`cannot read --data-file ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** A character-level language model of --data-file: its first 90% to train on, the rest to validate. */
async function textData(flags: Flags, seed: number, progress: Log): Promise<TrainData> {
  const { path, text } = await readTextFile(flags);
  const { train: trainSet, valid } = splitText(textDataset(text, { name: basename(path) }));
  const dModel = num(flags, 'd-model', 256, true);
  const context = num(flags, 'context', 128, true);
  const model = transformer({
    vocab: trainSet.vocabulary.length,
    vocabulary: [...trainSet.vocabulary],
    dModel,
    heads: num(flags, 'heads', 8, true),
    layers: num(flags, 'layers', 4, true),
    ffn: num(flags, 'ffn', 4 * dModel, true),
    context,
  });
  model.dataset = 'text';
  const batchesPerEpoch = flags['batches-per-epoch'] === undefined ? undefined : num(flags, 'batches-per-epoch', 1, true);
  const loader = new TextLoader(trainSet, { context, batchSize: num(flags, 'batch-size', 32, true), shuffle: true, seed, batchesPerEpoch });
  const testLoader = new TextLoader(valid, { context, batchSize: 64 });
  progress(`${path}: ${trainSet.ids.length} characters to train on, ${valid.ids.length} to validate, ${trainSet.vocabulary.length} distinct`);
  return {
    model,
    loader,
    testLoader,
    what: `${trainSet.ids.length} characters of ${trainSet.name.replace(/-train$/, '')} (${loader.length} batches of ${loader.batchSize} x ${context} a epoch)`,
    test: `validation set (${testLoader.tokens} characters predicted; loss in nats per character)`,
    evaluating: `${testLoader.tokens} validation characters`,
    testCount: testLoader.tokens,
    unit: 'chars',
    title: `transformer on ${basename(path)}: next-character accuracy and cost per slice rate`,
  };
}

async function train(flags: Flags, log: Log, progress: Log): Promise<Record<string, unknown>> {
  const seed = num(flags, 'seed', 1, true);
  manualSeed(seed);
  const { kind } = modelAndData(flags);
  const data = kind === 'transformer' ? await textData(flags, seed, progress) : await imageData(flags, seed, progress);
  const { model, loader, testLoader } = data;
  const text = kind === 'transformer';
  const epochs = num(flags, 'epochs', 5, true);
  // A transformer trains with AdamW (as nanoGPT's character model does); the CNNs with SGD.
  const lr = num(flags, 'lr', text ? 1e-3 : 0.05);
  const weightDecay = num(flags, 'weight-decay', text ? 0.1 : 5e-4);
  const optName = str(flags, 'optimizer', ['sgd', 'adam', 'adamw'] as const, text ? 'adamw' : 'sgd');
  const optimizer: Optimizer =
    optName === 'sgd'
      ? new SGD(model.parameters(), { lr, momentum: num(flags, 'momentum', 0.9), nesterov: flags.nesterov === true, weightDecay })
      : optName === 'adam'
        ? new Adam(model.parameters(), { lr, weightDecay })
        : new AdamW(model.parameters(), { lr, weightDecay });
  let lrSchedule: LrSchedule | undefined;
  if (flags.cosine) lrSchedule = new CosineLR(optimizer, { totalEpochs: epochs });
  else if (flags['lr-milestones'] !== undefined) lrSchedule = new MultiStepLR(optimizer, { milestones: list(flags, 'lr-milestones', []) });
  const warmup = num(flags, 'warmup', 0);
  if (warmup > 0) lrSchedule = new WarmupLR(optimizer, { warmupEpochs: warmup, after: lrSchedule });
  const rates = list(flags, 'rates', [1, 0.75, 0.5, 0.25]);
  const schedule = str(flags, 'schedule', ['random', 'random_min_max', 'round_robin', 'uniform'] as const, 'random_min_max') as ScheduleName;
  const out = flags.out as string | undefined;
  const json = flags.json === true;
  const bar =
    !json && process.stderr.isTTY
      ? new cliProgress.SingleBar(
          { format: `epoch {epoch} |{bar}| {value}/{total} batches  loss {loss}  acc {acc}%  {ips} ${data.unit}/s`, hideCursor: true, stream: process.stderr },
          cliProgress.Presets.shades_classic,
        )
      : null;
  if (out !== undefined) await mkdir(dirname(out), { recursive: true });
  log(`training ${model.config!.kind} on ${data.what}, rates ${rates.join(', ')} (${schedule}), ${epochs} epoch${epochs === 1 ? '' : 's'}`);
  const started = performance.now();
  let images = 0;
  const result = await fit(model, loader, {
    epochs,
    optimizer,
    rates,
    schedule,
    scheduleK: num(flags, 'schedule-k', 1, true),
    seed,
    lrSchedule,
    distill: flags.distill === true,
    clipGradNorm: flags.clip === undefined ? (text ? 1 : undefined) : num(flags, 'clip', 0),
    checkpoint: out === undefined ? undefined : `${out}.ckpt`,
    resume: flags.resume as string | undefined,
    callbacks: {
      onEpochBegin: (epoch) => {
        images = 0;
        bar?.start(loader.length, 0, { epoch, loss: '-', acc: '-', ips: '-' });
      },
      onBatchEnd: (info) => {
        images += info.images;
        bar?.update(info.batch + 1, { epoch: info.epoch, loss: info.loss.toFixed(4), acc: (100 * info.accuracy).toFixed(1), ips: (images / Math.max(1e-9, info.seconds)).toFixed(0) });
      },
      onEpochEnd: (rec) => {
        bar?.stop();
        log(`epoch ${rec.epoch}/${epochs}  loss ${rec.loss.toFixed(4)}  train accuracy ${(100 * rec.accuracy).toFixed(2)}%  ${rec.seconds.toFixed(1)} s`);
      },
    },
  });
  const trainSeconds = (performance.now() - started) / 1000;
  progress(`evaluating ${data.evaluating} at rates ${rates.join(', ')}`);
  const rows = await evaluate(model, testLoader, { rates, onProgress: evalProgress(progress, data.testCount, data.unit) });
  log(`\n${data.test}, ${trainSeconds.toFixed(1)} s of training:`);
  log(formatRateTable(rows));
  if (out !== undefined) {
    await save(model, out);
    const svg = `${out}.svg`;
    await writeFile(svg, rateTradeoffSvg(rows, data.title));
    log(`saved ${out} (checkpoint ${out}.ckpt, plot ${svg})`);
  }
  return { rates: rows, trainSeconds, epochs: result.epochs.map(({ eval: _e, ...r }) => r) };
}

async function evalCommand(flags: Flags, log: Log, progress: Log): Promise<Record<string, unknown>> {
  const path = flags.checkpoint as string | undefined;
  if (path === undefined) throw new UsageError('eval needs --checkpoint FILE');
  const model = await load(path);
  if (model.config?.kind === 'transformer') return evalText(flags, path, model, log, progress);
  const stats = model.preprocess;
  // The data the model was trained on, unless --dataset says otherwise.
  const recorded = model.dataset !== undefined && (DATASETS as readonly string[]).includes(model.dataset) ? (model.dataset as DatasetName) : undefined;
  const dataset = str(flags, 'dataset', DATASETS, recorded ?? 'mnist') as DatasetName;
  if (recorded === undefined && flags.dataset === undefined) {
    process.stderr.write(`modelslice eval: ${path} does not record the dataset it was trained on; evaluating on ${dataset} (pass --dataset to choose)\n`);
  } else if (recorded !== undefined && dataset !== recorded) {
    process.stderr.write(`modelslice eval: ${path} was trained on ${recorded}; evaluating on ${dataset} as --dataset asks\n`);
  }
  progress(`loading ${dataset}: test set`);
  const raw = await loadData(flags, 'test', dataset);
  checkModelInput('eval', model, raw.shape, `the ${dataset} images' shape`);
  const testSet = stats ? standardize(raw, stats) : raw;
  const rates = list(flags, 'rates', model.trainedRates ?? [1, 0.75, 0.5, 0.25]);
  progress(`evaluating ${testSet.length} test images at rates ${rates.join(', ')}`);
  const loader = new DataLoader(testSet, { batchSize: num(flags, 'batch-size', 500, true) });
  const rows = await evaluate(model, loader, { rates, onProgress: evalProgress(progress, testSet.length) });
  log(`${path} on ${testSet.name} (${testSet.length} images):`);
  log(formatRateTable(rows));
  return { dataset, images: testSet.length, rates: rows };
}

/** A language model on the validation part (the last 10%) of --data-file, in the model's own vocabulary. */
async function evalText(flags: Flags, path: string, model: BuiltModel, log: Log, progress: Log): Promise<Record<string, unknown>> {
  if (flags.dataset !== undefined && flags.dataset !== 'text') throw new UsageError(`${path} is a language model: evaluate it with --dataset text --data-file FILE`);
  const { path: file, text } = await readTextFile(flags);
  const { vocabulary } = model;
  if (vocabulary === undefined) throw new Error(`${path} records no vocabulary, so its token ids cannot be read from text`);
  const { valid } = splitText(textDataset(text, { vocabulary, name: basename(file) }));
  const context = modelInputShape('eval', model)[0];
  const loader = new TextLoader(valid, { context, batchSize: num(flags, 'batch-size', 64, true) });
  const rates = list(flags, 'rates', model.trainedRates ?? [1, 0.5, 0.25]);
  progress(`evaluating ${loader.tokens} characters at rates ${rates.join(', ')}`);
  const rows = await evaluate(model, loader, { rates, onProgress: evalProgress(progress, loader.tokens, 'chars') });
  log(`${path} on the validation set of ${file} (${loader.tokens} characters predicted; loss in nats per character):`);
  log(formatRateTable(rows));
  return { dataset: 'text', dataFile: file, characters: loader.tokens, rates: rows };
}

async function generateCommand(flags: Flags, json: boolean): Promise<Record<string, unknown>> {
  const path = flags.checkpoint as string | undefined;
  if (path === undefined) throw new UsageError('generate needs --checkpoint FILE (a saved language model)');
  const prompt = flags.prompt as string | undefined;
  if (prompt === undefined || prompt.length === 0) throw new UsageError('generate needs --prompt TEXT');
  const maxTokens = num(flags, 'max-tokens', 200, true);
  if (maxTokens < 0) throw new UsageError(`--max-tokens must be at least 0, got ${String(flags['max-tokens'])}`);
  const temperature = num(flags, 'temperature', 1);
  if (!(temperature >= 0)) throw new UsageError(`--temperature must be at least 0, got ${String(flags.temperature)}`);
  const topK = flags['top-k'] === undefined ? undefined : num(flags, 'top-k', 1, true);
  if (topK !== undefined && topK < 1) throw new UsageError(`--top-k must be at least 1, got ${String(flags['top-k'])}`);
  const draftRate = num(flags, 'draft-rate', 0.25);
  if (!(draftRate > 0 && draftRate <= 1)) throw new UsageError(`--draft-rate must be a slice rate in (0, 1], got ${String(flags['draft-rate'])}`);
  const draftTokens = num(flags, 'draft-tokens', 6, true);
  if (draftTokens < 1) throw new UsageError(`--draft-tokens must be at least 1, got ${String(flags['draft-tokens'])}`);
  const draftMinProbability = num(flags, 'draft-min-prob', 0.3);
  if (!(draftMinProbability >= 0 && draftMinProbability <= 1)) throw new UsageError(`--draft-min-prob must be a probability in [0, 1], got ${String(flags['draft-min-prob'])}`);
  const speculative = flags.speculative === true;
  const rate = num(flags, 'rate', 1);
  if (speculative && rate !== 1) throw new UsageError('--speculative generates at rate 1 (the draft runs at --draft-rate); leave out --rate');
  const model = await load(path);
  if (!(model instanceof Transformer)) throw new UsageError(`${path} holds a ${model.config?.kind ?? 'custom'} model, not a language model`);
  const { vocabulary } = model;
  if (vocabulary === undefined) throw new Error(`${path} records no vocabulary, so text cannot be turned into its token ids`);
  const encode = (text: string, what: string): number[] => {
    try {
      return [...textDataset(text, { vocabulary }).ids];
    } catch (err) {
      throw new Error(`${what}: ${(err as Error).message.replace(/^textDataset: /, '')}`);
    }
  };
  const ids = encode(prompt, '--prompt');
  const stop = flags.stop === undefined ? undefined : [encode(flags.stop as string, '--stop')];
  const seed = flags.seed === undefined ? undefined : num(flags, 'seed', 1, true);
  const write = json ? undefined : (id: number) => void process.stdout.write(vocabulary[id]);
  if (!json) process.stdout.write(prompt);
  const options = { maxTokens, temperature, topK, seed, stop, rate, onToken: write };
  const started = performance.now();
  const { tokens, stats } = speculative ? speculativeGenerate(model, ids, { ...options, draftRate, draftTokens, draftMinProbability }) : generate(model, ids, options);
  const seconds = (performance.now() - started) / 1000;
  const text = decodeText(tokens, vocabulary);
  const tokensPerSecond = tokens.length / Math.max(1e-9, seconds);
  if (!json) {
    process.stdout.write('\n');
    const spec = speculative ? `, ${stats.accepted} of ${stats.drafted} drafted tokens kept (${(tokens.length / Math.max(1, stats.passes)).toFixed(2)} tokens per full pass)` : '';
    process.stderr.write(`${tokens.length} tokens in ${seconds.toFixed(2)} s (${tokensPerSecond.toFixed(1)} tokens/s) at rate ${speculative ? `1 (draft ${draftRate})` : rate}, ${stats.passes} passes${spec}\n`);
  }
  return { text, tokens, seconds, tokensPerSecond, rate, passes: stats.passes, ...(speculative ? { drafted: stats.drafted, accepted: stats.accepted, draftRate } : {}) };
}

/** How often a server started by npm checks that its parent is still there. */
const PARENT_POLL_MS = 200;

/** Serves until SIGINT or SIGTERM, then shuts down gracefully (a second signal kills at once). */
async function serveCommand(flags: Flags, log: (s: string) => void, json: boolean): Promise<Record<string, unknown>> {
  const path = flags.checkpoint as string | undefined;
  if (path === undefined) throw new UsageError('serve needs --checkpoint FILE');
  if (flags.port === undefined) throw new UsageError('serve needs --port N (0 picks a free port)');
  if (flags['slo-ms'] === undefined) throw new UsageError('serve needs --slo-ms X, the latency objective in milliseconds');
  const port = num(flags, 'port', 0, true);
  if (port < 0 || port > 65535) throw new UsageError(`--port must be in [0, 65535], got ${String(flags.port)}`);
  const sloMs = num(flags, 'slo-ms', 0);
  if (!(sloMs > 0)) throw new UsageError(`--slo-ms must be greater than 0, got ${String(flags['slo-ms'])}`);
  const atLeastOne = (name: keyof typeof options): number | undefined => {
    if (flags[name] === undefined) return undefined;
    const v = num(flags, name, 1, true);
    if (v < 1) throw new UsageError(`--${name} must be at least 1, got ${String(flags[name])}`);
    return v;
  };
  const maxBatch = atLeastOne('max-batch');
  const maxQueue = atLeastOne('max-queue');
  const maxBodyBytes = atLeastOne('max-body-bytes');
  const workers = atLeastOne('workers');
  const threads = atLeastOne('threads');
  // checkFlags has checked --rate's range, for every command.
  const rate = flags.rate === undefined ? undefined : num(flags, 'rate', 1);
  const host = (flags.host as string | undefined) ?? '127.0.0.1';
  const inputShape = shapeFlag(flags, false);
  const drainDelayMs = flags['drain-delay-ms'] === undefined ? undefined : num(flags, 'drain-delay-ms', 0, true);
  if (drainDelayMs !== undefined && drainDelayMs < 0) throw new UsageError(`--drain-delay-ms must be at least 0, got ${String(flags['drain-delay-ms'])}`);
  const server = await serve(path, { port, host, sloMs, maxBatch, maxQueue, maxBodyBytes, workers, threads, rate, inputShape, drainDelayMs });
  const p = server.latencyProfile.byBatch[1];
  const workerCount = workers ?? defaultWorkers();
  log(`serving ${path} at ${server.url} (SLO ${sloMs} ms, ${rate === undefined ? 'elastic rate' : `fixed rate ${rate}`}, ${workerCount} worker${workerCount > 1 ? 's' : ''}, queue of at most ${server.maxQueue} inputs)`);
  if (p !== undefined) log(`profiled latency at batch 1: ${Object.entries(p).sort(([a], [b]) => Number(b) - Number(a)).map(([r, ms]) => `r=${r} ${ms.toFixed(2)} ms`).join(', ')}`);
  log(`POST /predict${server.generates ? ', POST /generate' : ''}, GET /healthz, GET /readyz, GET /metrics; Ctrl-C (SIGINT) or SIGTERM stops after finishing queued requests`);
  if (json) console.log(JSON.stringify({ url: server.url, pid: process.pid }));
  const signal = await new Promise<string>((resolve) => {
    const onInt = () => done('SIGINT');
    const onTerm = () => done('SIGTERM');
    // npx and npm run start the bin through `sh -c`. npm passes SIGTERM on to
    // that shell, which dies of it without passing it on, so this process
    // would serve on, orphaned. Under npm, losing the parent counts as SIGTERM.
    // (Not otherwise: `nohup modelslice serve &` must outlive its shell.)
    const parent = process.ppid;
    const orphaned = process.env.npm_lifecycle_event ? setInterval(() => process.ppid !== parent && done('parent exited'), PARENT_POLL_MS) : undefined;
    orphaned?.unref();
    const done = (name: string) => {
      clearInterval(orphaned);
      // Removing the handlers restores the default: a second signal ends the process at once.
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(name);
    };
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
  log(`${signal}: ${drainDelayMs ? `not ready; serving ${drainDelayMs} ms more, then ` : ''}finishing queued requests (a second signal stops at once)`);
  await server.close();
  const m = server.metrics();
  const delivered = m.accuracy === undefined ? '' : `, accuracy delivered ${(100 * m.accuracy).toFixed(2)}% (the model's recorded accuracy at each answer's rate)`;
  log(`stopped: ${m.served} predictions served, ${m.rejected} refused, ${m.batches} batches${delivered}`);
  return { url: server.url, signal, served: m.served, rejected: m.rejected, batches: m.batches, requests: m.requests, answeredByRate: m.answeredByRate, ...(m.accuracy !== undefined ? { accuracy: m.accuracy } : {}) };
}

async function exportCommand(flags: Flags, log: (s: string) => void): Promise<Record<string, unknown>> {
  const path = flags.checkpoint as string | undefined;
  const out = flags.out as string | undefined;
  if (path === undefined) throw new UsageError('export needs --checkpoint FILE');
  if (out === undefined) throw new UsageError('export needs --out FILE.onnx');
  const rate = num(flags, 'rate', 1);
  const given = shapeFlag(flags, true);
  const model = await load(path);
  const cfg = model.config!;
  const inputShape = given ?? [1, ...modelInputShape('export', model)];
  await exportOnnx(model, out, { rate, inputShape });
  const bytes = (await stat(out)).size;
  const takes = cfg.kind === 'transformer' ? `int64 token ids [N, T] (T up to ${cfg.context}), logits [N, T, ${cfg.vocab}]` : `input [N, ${inputShape.slice(1).join(', ')}]`;
  log(`wrote ${out}: ${cfg.kind} at rate ${rate}, ${takes}, ${bytes} bytes`);
  return { path: out, rate, bytes, inputShape };
}

/**
 * parseArgs takes `--rate -0.5` for a flag without its value followed by an unknown flag
 * ("argument is ambiguous"); a negative number after a flag that takes a value is that value,
 * so it is joined as `--rate=-0.5` and then range-checked like any other.
 */
function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith('--') && !args[i].includes('=') ? args[i].slice(2) : '';
    const takesValue = Object.hasOwn(options, name) && options[name as keyof typeof options].type === 'string';
    if (takesValue && i + 1 < args.length && /^-(\d|\.\d|Infinity)/.test(args[i + 1])) {
      out.push(`${args[i]}=${args[i + 1]}`);
      i++;
    } else {
      out.push(args[i]);
    }
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  let flags: Flags;
  try {
    flags = parseArgs({ args: joinNegativeValues(rest), options, strict: true, allowPositionals: false }).values as Flags;
  } catch (err) {
    process.stderr.write(`modelslice: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (command === undefined || command === 'help' || flags.help) {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  const json = flags.json === true;
  const log = json ? () => {} : (s: string) => console.log(s);
  // Progress goes to stderr, so stdout holds only the results.
  const progress = json ? () => {} : (s: string) => void process.stderr.write(`${s}\n`);
  try {
    checkFlags(flags);
    if (flags.threads !== undefined) setNumThreads(num(flags, 'threads', 1, true));
    let result: Record<string, unknown>;
    if (command === 'train') result = await train(flags, log, progress);
    else if (command === 'eval') result = await evalCommand(flags, log, progress);
    else if (command === 'serve') result = await serveCommand(flags, log, json);
    else if (command === 'export') result = await exportCommand(flags, log);
    else if (command === 'generate') result = await generateCommand(flags, json);
    else throw new UsageError(`unknown command ${command}`);
    if (json) console.log(JSON.stringify(result));
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`modelslice: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`modelslice ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}
