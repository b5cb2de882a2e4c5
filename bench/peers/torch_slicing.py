#!/usr/bin/env python3
"""PyTorch peer for the model benchmarks: the paper's slicing, done the way its
reference code does it (weight views weight[:out, :in] handed to the
framework's convolution), on the same networks and shapes as bench/models.mjs.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 bench/peers/torch_slicing.py --json
Prints a table, and with --json one JSON object as the last line.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def width(units, rate, groups=8):
    k = min(groups, max(1, math.ceil(rate * groups - 1e-9)))
    return math.ceil(units * k / groups)


class SlicedConv(torch.nn.Module):
    def __init__(self, cin, cout, k, stride=1, slice_in=True, slice_out=True):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(cout, cin, k, k) * math.sqrt(2.0 / (k * k * cout)))
        self.stride, self.pad = stride, (k - 1) // 2
        self.slice_in, self.slice_out = slice_in, slice_out
        self.rate = 1.0

    def forward(self, x):
        cin = x.shape[1]
        cout = width(self.weight.shape[0], self.rate) if self.slice_out else self.weight.shape[0]
        return F.conv2d(x, self.weight[:cout, :cin], None, self.stride, self.pad)


class SlicedGroupNorm(torch.nn.Module):
    def __init__(self, c, groups=8):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(c))
        self.bias = torch.nn.Parameter(torch.zeros(c))
        self.per_group = c // groups

    def forward(self, x):
        c = x.shape[1]
        return F.group_norm(x, max(1, c // self.per_group), self.weight[:c], self.bias[:c])


class SlicedLinear(torch.nn.Module):
    def __init__(self, fin, fout, slice_out=True):
        super().__init__()
        bound = 1 / math.sqrt(fin)
        self.weight = torch.nn.Parameter(torch.empty(fout, fin).uniform_(-bound, bound))
        self.bias = torch.nn.Parameter(torch.empty(fout).uniform_(-bound, bound))
        self.slice_out = slice_out
        self.rate = 1.0

    def forward(self, x):
        fin = x.shape[1]
        fout = width(self.weight.shape[0], self.rate) if self.slice_out else self.weight.shape[0]
        return F.linear(x, self.weight[:fout, :fin], self.bias[:fout])


class Bottleneck(torch.nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.bn1, self.conv1 = SlicedGroupNorm(cin), SlicedConv(cin, planes, 1)
        self.bn2, self.conv2 = SlicedGroupNorm(planes), SlicedConv(planes, planes, 3, stride)
        self.bn3, self.conv3 = SlicedGroupNorm(planes), SlicedConv(planes, out, 1)
        self.down = SlicedConv(cin, out, 1, stride) if stride != 1 or cin != out else None

    def forward(self, x):
        o = self.conv1(F.relu(self.bn1(x)))
        o = self.conv2(F.relu(self.bn2(o)))
        o = self.conv3(F.relu(self.bn3(o)))
        return o + (self.down(x) if self.down is not None else x)


class Basic(torch.nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.bn1, self.conv1 = SlicedGroupNorm(cin), SlicedConv(cin, planes, 3, stride)
        self.bn2, self.conv2 = SlicedGroupNorm(planes), SlicedConv(planes, planes, 3)
        self.down = SlicedConv(cin, planes, 1, stride) if stride != 1 or cin != planes else None

    def forward(self, x):
        o = self.conv1(F.relu(self.bn1(x)))
        o = self.conv2(F.relu(self.bn2(o)))
        return o + (self.down(x) if self.down is not None else x)


class PreActResNet(torch.nn.Module):
    def __init__(self, depth, classes=10, in_channels=3):
        super().__init__()
        block = Bottleneck if depth > 110 else Basic
        n = (depth - 2) // (9 if block is Bottleneck else 6)
        self.conv1 = SlicedConv(in_channels, 16, 3, slice_in=False)
        layers, cin = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(block(cin, planes, stride if i == 0 else 1))
                cin = planes * block.expansion
        self.layers = torch.nn.Sequential(*layers)
        self.bn = SlicedGroupNorm(cin)
        self.fc = SlicedLinear(cin, classes, slice_out=False)

    def set_rate(self, r):
        for m in self.modules():
            if hasattr(m, 'rate'):
                m.rate = r

    def forward(self, x):
        h = self.layers(self.conv1(x))
        h = F.relu(self.bn(h))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


def best_ms(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def train_step_child(spec, threads):
    """One training-step case of bench/train.mjs: best step time over spec['reps'] steps
    (after two warm-up steps) and this process's peak RSS."""
    import resource
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c, h, w = spec['shape']
    model = PreActResNet(spec['depth'], 10, c).train()
    x = torch.randn(128, c, h, w)
    y = torch.randint(0, 10, (128,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    micro = spec.get('micro') or 128

    def step():
        opt.zero_grad()
        for r in spec['rates']:
            model.set_rate(r)
            for s in range(0, 128, micro):
                loss = F.cross_entropy(model(x[s:s + micro]), y[s:s + micro]) * (min(micro, 128 - s) / 128)
                loss.backward()
        opt.step()

    ms = best_ms(step, spec['reps'], warmup=2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({'ms': ms, 'peakRssMiB': peak, 'torch': torch.__version__}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--depths', default='20,56,164')
    ap.add_argument('--rates', default='1,0.75,0.5,0.25')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--json', action='store_true')
    ap.add_argument('--train-step', help='JSON case of bench/train.mjs: time one training step kind and exit')
    args = ap.parse_args()
    if args.train_step:
        train_step_child(json.loads(args.train_step), args.threads)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rates = [float(r) for r in args.rates.split(',')]
    out = {'torch': torch.__version__, 'threads': args.threads, 'inference': []}
    for depth in [int(d) for d in args.depths.split(',')]:
        model = PreActResNet(depth).eval()
        for batch in (1, 64):
            x = torch.randn(batch, 3, 32, 32)
            for r in rates:
                model.set_rate(r)
                with torch.no_grad():
                    ms = best_ms(lambda: model(x), args.reps if batch == 64 else 3 * args.reps)
                out['inference'].append({'model': f'resnet{depth}', 'batch': batch, 'rate': r, 'ms': ms})
                if not args.json:
                    print(f'resnet{depth} batch {batch} rate {r}: {ms:.1f} ms')
    if args.json:
        print(json.dumps(out))


if __name__ == '__main__':
    main()
