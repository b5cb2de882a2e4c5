// ONNX export of the compact sub-model at one rate. The model is sliced first
// (model.slice(rate)), so every weight in the file is exactly the prefix the
// rate uses and every shape is static; the batch axis stays dynamic. The
// protobuf encoding is protobufjs's, from a declared subset of onnx.proto.
import protobuf from 'protobufjs';
import { Conv2d } from '../nn/conv2d.js';
import { AvgPool2d, Flatten, GlobalAvgPool2d, Identity, MaxPool2d, ReLU, Sequential } from '../nn/layers.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { BatchNorm2d, GroupNorm, scaledNormGroups } from '../nn/norm.js';
import { Mlp } from '../models/mlp.js';
import { PreActBasicBlock, PreActBottleneck, ResNet } from '../models/resnet.js';
import { Vgg } from '../models/vgg.js';
import { Transformer } from '../models/transformer.js';
import type { LayerNorm } from '../nn/embedding.js';
import type { TransformerBlock } from '../nn/transformer.js';
import { modelRecord } from '../metadata.js';
import { modelInputShape } from '../nn/input-shape.js';
import { checkRate } from '../nn/width.js';
import { writeFileAtomic } from './safetensors.js';

// The parts of onnx.proto (field numbers as in the ONNX specification) that the exporter writes.
const schema = protobuf.Root.fromJSON({
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 },
            opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
            producerName: { type: 'string', id: 2 },
            producerVersion: { type: 'string', id: 3 },
            docString: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
          },
        },
        OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            ints: { rule: 'repeated', type: 'int64', id: 8 },
            type: { type: 'int32', id: 20 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1 },
            dataType: { type: 'int32', id: 2 },
            name: { type: 'string', id: 8 },
            rawData: { type: 'bytes', id: 9 },
          },
        },
        ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 } } },
        TypeProto: {
          fields: { tensorType: { type: 'TypeProtoTensor', id: 1 } },
        },
        TypeProtoTensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } },
        TensorShapeProto: { fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } } },
        Dimension: { fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } } },
      },
    },
  },
});
const ModelProto = schema.lookupType('onnx.ModelProto');

const FLOAT = 1;
const INT64 = 7;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;
const OPSET = 13;

type Attr = { name: string; f?: number; i?: number; ints?: number[]; type: number };

const int = (name: string, i: number): Attr => ({ name, i, type: ATTR_INT });
const ints = (name: string, v: number[]): Attr => ({ name, ints: v, type: ATTR_INTS });
const float = (name: string, f: number): Attr => ({ name, f, type: ATTR_FLOAT });

class GraphBuilder {
  readonly nodes: object[] = [];
  readonly initializers: object[] = [];
  private count = 0;

  private fresh(prefix: string): string {
    return `${prefix}_${this.count++}`;
  }

  weight(name: string, values: Float32Array, dims: number[]): string {
    const bytes = new Uint8Array(values.length * 4);
    const view = new DataView(bytes.buffer);
    values.forEach((v, i) => view.setFloat32(4 * i, v, true));
    this.initializers.push({ name, dims, dataType: FLOAT, rawData: bytes });
    return name;
  }

  /** A float32 scalar (rank 0) constant. */
  scalar(name: string, value: number): string {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.initializers.push({ name: this.fresh(name), dims: [], dataType: FLOAT, rawData: bytes });
    return (this.initializers[this.initializers.length - 1] as { name: string }).name;
  }

  int64s(name: string, values: number[]): string {
    const bytes = new Uint8Array(values.length * 8);
    const view = new DataView(bytes.buffer);
    values.forEach((v, i) => view.setBigInt64(8 * i, BigInt(v), true));
    this.initializers.push({ name: this.fresh(name), dims: [values.length], dataType: INT64, rawData: bytes });
    return (this.initializers[this.initializers.length - 1] as { name: string }).name;
  }

  node(opType: string, inputs: string[], attrs: Attr[] = [], output?: string): string {
    const out = output ?? this.fresh(opType.toLowerCase());
    this.nodes.push({ opType, input: inputs, output: [out], name: this.fresh(`n_${opType}`), attribute: attrs });
    return out;
  }
}

/** Emits ONNX nodes for module m applied to `input` (shape known for norms); returns the output name. */
function emit(g: GraphBuilder, m: Module, input: string, name: string): string {
  if (m instanceof Sequential) {
    let h = input;
    m.namedChildren().forEach(([n, child]) => (h = emit(g, child, h, name ? `${name}.${n}` : n)));
    return h;
  }
  if (m instanceof Linear) {
    const w = g.weight(`${name}.weight`, m.weight.data, [...m.weight.shape]);
    const inputs = [input, w];
    if (m.bias) inputs.push(g.weight(`${name}.bias`, m.bias.data, [...m.bias.shape]));
    return g.node('Gemm', inputs, [int('transB', 1)]);
  }
  if (m instanceof Conv2d) {
    const w = g.weight(`${name}.weight`, m.weight.data, [...m.weight.shape]);
    const inputs = [input, w];
    if (m.bias) inputs.push(g.weight(`${name}.bias`, m.bias.data, [...m.bias.shape]));
    const [ph, pw] = m.padding;
    return g.node('Conv', inputs, [
      ints('kernel_shape', [...m.kernelSize]),
      ints('strides', [...m.stride]),
      ints('pads', [ph, pw, ph, pw]),
      ints('dilations', [...m.dilation]),
      int('group', m.groups),
    ]);
  }
  if (m instanceof GroupNorm) {
    // GroupNormalization's per-channel form needs opset 21; InstanceNormalization over
    // [N, G, -1] followed by a per-channel affine is the same computation at opset 13.
    const c = m.numChannels;
    const groups = scaledNormGroups(m.numChannels, m.numGroups, c);
    const grouped = g.node('Reshape', [input, g.int64s('gn_shape', [0, groups, -1])]);
    const ones = g.weight(`${name}.unit_scale`, new Float32Array(groups).fill(1), [groups]);
    const zeros = g.weight(`${name}.unit_bias`, new Float32Array(groups), [groups]);
    const normed = g.node('InstanceNormalization', [grouped, ones, zeros], [float('epsilon', m.eps)]);
    const shape = g.node('Shape', [input]);
    let h = g.node('Reshape', [normed, shape]);
    if (m.weight) h = g.node('Mul', [h, g.weight(`${name}.weight`, m.weight.data, [c, 1, 1])]);
    if (m.bias) h = g.node('Add', [h, g.weight(`${name}.bias`, m.bias.data, [c, 1, 1])]);
    return h;
  }
  if (m instanceof BatchNorm2d) {
    const s = m.stateForRate(1);
    const c = m.numFeatures;
    return g.node(
      'BatchNormalization',
      [
        input,
        g.weight(`${name}.weight`, s.weight ? s.weight.data : new Float32Array(c).fill(1), [c]),
        g.weight(`${name}.bias`, s.bias ? s.bias.data : new Float32Array(c), [c]),
        g.weight(`${name}.running_mean`, s.runningMean.data, [c]),
        g.weight(`${name}.running_var`, s.runningVar.data, [c]),
      ],
      [float('epsilon', m.eps)],
    );
  }
  if (m instanceof ReLU) return g.node('Relu', [input]);
  if (m instanceof Identity) return input;
  if (m instanceof Flatten) return g.node('Flatten', [input], [int('axis', 1)]);
  if (m instanceof GlobalAvgPool2d) return g.node('Flatten', [g.node('GlobalAveragePool', [input])], [int('axis', 1)]);
  if (m instanceof MaxPool2d || m instanceof AvgPool2d) {
    const k = Array.isArray(m.kernelSize) ? m.kernelSize : [m.kernelSize, m.kernelSize];
    const s = m.options.stride === undefined ? k : Array.isArray(m.options.stride) ? m.options.stride : [m.options.stride, m.options.stride];
    const p = m.options.padding === undefined ? [0, 0] : Array.isArray(m.options.padding) ? m.options.padding : [m.options.padding, m.options.padding];
    const attrs = [ints('kernel_shape', k), ints('strides', s), ints('pads', [p[0], p[1], p[0], p[1]])];
    if (m instanceof AvgPool2d) attrs.push(int('count_include_pad', 1));
    return g.node(m instanceof MaxPool2d ? 'MaxPool' : 'AveragePool', [input], attrs);
  }
  if (m instanceof PreActBasicBlock || m instanceof PreActBottleneck) {
    const convs: [Module, Conv2d][] =
      m instanceof PreActBasicBlock
        ? [[m.bn1, m.conv1], [m.bn2, m.conv2]]
        : [[m.bn1, m.conv1], [m.bn2, m.conv2], [m.bn3, m.conv3]];
    let h = input;
    convs.forEach(([norm, conv], i) => {
      h = g.node('Relu', [emit(g, norm, h, `${name}.bn${i + 1}`)]);
      h = emit(g, conv, h, `${name}.conv${i + 1}`);
    });
    const residual = m.downsample ? emit(g, m.downsample, input, `${name}.downsample`) : input;
    return g.node('Add', [h, residual]);
  }
  if (m instanceof ResNet) {
    let h = emit(g, m.conv1, input, 'conv1');
    h = emit(g, m.layer1, h, 'layer1');
    h = emit(g, m.layer2, h, 'layer2');
    h = emit(g, m.layer3, h, 'layer3');
    h = g.node('Relu', [emit(g, m.bn, h, 'bn')]);
    h = g.node('Flatten', [g.node('GlobalAveragePool', [h])], [int('axis', 1)]);
    return emit(g, m.fc, h, 'fc');
  }
  if (m instanceof Vgg) {
    const h = emit(g, m.features, input, 'features');
    const pooled = g.node('Flatten', [g.node('GlobalAveragePool', [h])], [int('axis', 1)]);
    return emit(g, m.classifier, pooled, 'classifier');
  }
  throw new TypeError(`exportOnnx: no ONNX form for ${m.constructor.name}`);
}

/** x @ W^T + b for a Linear applied to the last axis of a rank-3 tensor (MatMul with the weight transposed once, here). */
function linear3(g: GraphBuilder, m: Linear, input: string, name: string): string {
  const [out, inF] = m.weight.shape;
  const wt = new Float32Array(out * inF);
  for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) wt[i * out + o] = m.weight.data[o * inF + i];
  const y = g.node('MatMul', [input, g.weight(`${name}.weight_t`, wt, [inF, out])]);
  return m.bias ? g.node('Add', [y, g.weight(`${name}.bias`, m.bias.data, [out])]) : y;
}

/** Layer norm over the last axis in opset-13 ops: (x - mean) / sqrt(var + eps) * gamma + beta. */
function layerNorm3(g: GraphBuilder, m: LayerNorm, input: string, name: string): string {
  const axes = [int('keepdims', 1), ints('axes', [-1])];
  const centered = g.node('Sub', [input, g.node('ReduceMean', [input], axes)]);
  const variance = g.node('ReduceMean', [g.node('Mul', [centered, centered])], axes);
  const std = g.node('Sqrt', [g.node('Add', [variance, g.scalar(`${name}.eps`, m.eps)])]);
  const normed = g.node('Div', [centered, std]);
  return g.node('Add', [g.node('Mul', [normed, g.weight(`${name}.weight`, m.weight.data, [m.dim])]), g.weight(`${name}.bias`, m.bias.data, [m.dim])]);
}

/**
 * A transformer on int64 token ids [N, T] (T dynamic, at most the context) to logits
 * [N, T, vocab]: positions from Range(0, T), the causal mask added to the scores as -inf above
 * the diagonal, each block's heads as [N, heads, T, headDim] (a compact slice holds only the
 * rate's heads and units).
 */
function emitTransformer(g: GraphBuilder, m: Transformer, input: string): string {
  const { dModel, heads: fullHeads } = m.config;
  const headDim = dModel / fullHeads;
  const T = g.node('Gather', [g.node('Shape', [input]), g.int64s('axis1', [1])]); // [1]
  const zero = g.int64s('zero', [0]);
  const one = g.int64s('one', [1]);
  const squeeze = (x: string) => g.node('Squeeze', [x, g.int64s('axes0', [0])]);
  const positions = g.node('Range', [squeeze(zero), squeeze(T), squeeze(one)]); // [T]
  const tokens = g.node('Gather', [g.weight('tokens.weight', m.tokens.weight.data, [...m.tokens.weight.shape]), input]);
  let h = g.node('Add', [tokens, g.node('Gather', [g.weight('positions.weight', m.positions.weight.data, [...m.positions.weight.shape]), positions])]);
  // mask[i, j] = -inf where key j comes after query i.
  const rows = g.node('Unsqueeze', [positions, g.int64s('axes1', [1])]); // [T, 1]
  const cols = g.node('Unsqueeze', [positions, g.int64s('axes0', [0])]); // [1, T]
  const mask = g.node('Where', [g.node('Greater', [cols, rows]), g.scalar('neg_inf', -Infinity), g.scalar('zero_f', 0)]);
  m.blocks.namedChildren().forEach(([i, child]) => {
    const block = child as TransformerBlock;
    const name = `blocks.${i}`;
    const att = block.attention;
    const width = att.query.outFeatures;
    const heads = width / headDim;
    const a = layerNorm3(g, block.norm1, h, `${name}.norm1`);
    const split = g.int64s('heads_shape', [0, 0, heads, headDim]);
    const project = (lin: Linear, n: string, perm: number[]) => g.node('Transpose', [g.node('Reshape', [linear3(g, lin, a, `${name}.attention.${n}`), split])], [ints('perm', perm)]);
    const q = project(att.query, 'query', [0, 2, 1, 3]); // [N, h, T, d]
    const k = project(att.key, 'key', [0, 2, 3, 1]); // [N, h, d, T]
    const v = project(att.value, 'value', [0, 2, 1, 3]);
    const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, k]), g.scalar(`${name}.scale`, 1 / Math.sqrt(headDim))]), mask]);
    const mixed = g.node('MatMul', [g.node('Softmax', [scores], [int('axis', -1)]), v]); // [N, h, T, d]
    const joined = g.node('Reshape', [g.node('Transpose', [mixed], [ints('perm', [0, 2, 1, 3])]), g.int64s('join_shape', [0, 0, width])]);
    h = g.node('Add', [h, linear3(g, att.output, joined, `${name}.attention.output`)]);
    const hidden = g.node('Relu', [linear3(g, block.hidden, layerNorm3(g, block.norm2, h, `${name}.norm2`), `${name}.hidden`)]);
    h = g.node('Add', [h, linear3(g, block.project, hidden, `${name}.project`)]);
  });
  return linear3(g, m.head, layerNorm3(g, m.norm, h, 'norm'), 'head');
}

export interface ExportOnnxOptions {
  /** The slice rate to export (default 1). */
  rate?: number;
  /**
   * Input shape with the batch, e.g. [1, 3, 32, 32]; the batch axis stays
   * dynamic. By default 1 and the model's own input shape (`model.inputShape`).
   */
  inputShape?: readonly number[];
}

/** The ONNX bytes of the compact model at `rate`. */
export function onnxBytes(model: Module, options: ExportOnnxOptions = {}): Uint8Array {
  const op = 'exportOnnx';
  if (!(model instanceof Module)) throw new TypeError(`${op}: model must be a Module`);
  const rate = checkRate(op, options?.rate ?? 1);
  const given = options?.inputShape;
  if (given !== undefined && (!Array.isArray(given) || given.length < 2 || given.some((d) => !Number.isInteger(d) || d < 1))) {
    throw new RangeError(`${op}: inputShape must include the batch, e.g. [1, 3, 32, 32], got ${JSON.stringify(given)}`);
  }
  const shape = [given?.[0] ?? 1, ...modelInputShape(op, model, given?.slice(1), `inputShape ${JSON.stringify(given)} without its batch`)];
  const compact = model.slice(rate, { inputShape: shape.slice(1) });
  compact.eval();
  const g = new GraphBuilder();
  let input = 'input';
  const text = compact instanceof Transformer;
  if (compact instanceof Mlp && shape.length > 2) input = g.node('Flatten', [input], [int('axis', 1)]);
  const body = compact instanceof Mlp ? (compact as Sequential) : compact;
  const last = text ? emitTransformer(g, compact, input) : emit(g, body, input, '');
  g.node('Identity', [last], [], 'logits');
  const classes = (modelRecord(compact).config as { classes?: number } | undefined)?.classes;
  const dims = (values: (number | string)[]) => ({ dim: values.map((v) => (typeof v === 'string' ? { dimParam: v } : { dimValue: v })) });
  // A language model takes int64 token ids [N, T] with T dynamic, and gives logits at every position.
  const inputInfo = text ? { elemType: INT64, shape: dims(['N', 'T']) } : { elemType: FLOAT, shape: dims(['N', ...shape.slice(1)]) };
  const outputDims = text ? ['N', 'T', compact.config.vocab] : classes ? ['N', classes] : ['N', 'classes'];
  const message = ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'modelslice',
    producerVersion: '0.1.0',
    docString: `compact sub-model at slice rate ${rate}`,
    graph: {
      name: `modelslice_rate_${String(rate).replace('.', '_')}`,
      node: g.nodes,
      initializer: g.initializers,
      input: [{ name: 'input', type: { tensorType: inputInfo } }],
      output: [{ name: 'logits', type: { tensorType: { elemType: FLOAT, shape: dims(outputDims) } } }],
    },
  });
  return ModelProto.encode(message).finish();
}

/** Writes the compact model at `rate` as ONNX (input `input`, output `logits`), atomically. */
export async function exportOnnx(model: Module, path: string, options: ExportOnnxOptions = {}): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('exportOnnx: path must be a non-empty string');
  const bytes = onnxBytes(model, options);
  try {
    await writeFileAtomic(path, bytes);
  } catch (err) {
    throw new Error(`exportOnnx: cannot write ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
