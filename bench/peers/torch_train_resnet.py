#!/usr/bin/env python3
"""PyTorch twin of examples/train-resnet.mjs: the same recipe, written out so the
two can be run one after the other and compared (per-rate test accuracy, wall time).

Recipe (pinned, as in the example): pre-activation ResNet-20 with GroupNorm (8 groups,
constant channels per group as the width shrinks), sliced by weight views with the
library's width rule (8 groups per layer, first conv's input and the classifier's output
full); Fashion-MNIST standardized by the training set's pixel mean and std; random crops
with 2 pixels of zero padding; batches of 128, reshuffled every epoch (last batch smaller);
rates 1, 0.75, 0.5, 0.25 with the random_min_max schedule (widest, one random middle
rate, narrowest; gradients summed, then clipped to a global L2 norm of 5); SGD lr 0.1, Nesterov momentum 0.9, weight decay 5e-4
on every parameter; learning rate per batch: linear warm-up over the first epoch
((t + 1/64) / 1) times cosine annealing to 0 over all epochs, t the fractional epoch.

  /usr/bin/python3 bench/peers/torch_train_resnet.py [--epochs 10] [--seed 1] [--threads 2] [--clip 5] [--limit N]
Prints one JSON object: {"rates": [{"rate", "accuracy"}], "trainSeconds", "torch"}.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_slicing import PreActResNet  # noqa: E402

DATA = '/usr/share/datasets/fashion-mnist'


def idx(path):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split, data_dir):
    prefix = 'train' if split == 'train' else 't10k'
    x = idx(os.path.join(data_dir, f'{prefix}-images-idx3-ubyte.gz')).astype(np.float32) / 255
    y = idx(os.path.join(data_dir, f'{prefix}-labels-idx1-ubyte.gz')).astype(np.int64)
    return x[:, None, :, :], y


def lr_factor(t, epochs):
    ramp = min(1.0, (t + 1 / 64) / 1.0)
    p = min(1.0, max(0.0, t / epochs))
    return ramp * 0.5 * (1 + math.cos(math.pi * p))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--limit', type=int)
    ap.add_argument('--clip', type=float, default=5.0)
    ap.add_argument('--data-dir', default=DATA)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x, y = load('train', args.data_dir)
    if args.limit:
        keep = rng.choice(len(x), args.limit, replace=False)
        x, y = x[keep], y[keep]
    mean, std = float(x.mean()), float(x.std())
    x = (x - mean) / std
    tx, ty = load('test', args.data_dir)
    tx = (tx - mean) / std
    model = PreActResNet(20, 10, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rates, middle = [1.0, 0.75, 0.5, 0.25], [0.75, 0.5]
    n, batch = len(x), 128
    batches = math.ceil(n / batch)
    padded = np.zeros((batch, 1, 32, 32), dtype=np.float32)
    started = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        order = rng.permutation(n)
        for b in range(batches):
            idxs = order[b * batch:(b + 1) * batch]
            m = len(idxs)
            # Random crops with 2 pixels of zero padding.
            padded[:m] = 0
            padded[:m, :, 2:30, 2:30] = x[idxs]
            dy, dx = rng.integers(0, 5, m), rng.integers(0, 5, m)
            xb = np.stack([padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28] for i in range(m)])
            xb, yb = torch.from_numpy(xb), torch.from_numpy(y[idxs])
            for g in opt.param_groups:
                g['lr'] = 0.1 * lr_factor(epoch + b / batches, args.epochs)
            opt.zero_grad()
            for r in [1.0, float(rng.choice(middle)), 0.25]:
                model.set_rate(r)
                F.cross_entropy(model(xb), yb).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
        print(f'epoch {epoch + 1}/{args.epochs} {time.perf_counter() - started:.0f} s', file=sys.stderr)
    train_seconds = time.perf_counter() - started
    model.eval()
    rows = []
    with torch.no_grad():
        for r in rates:
            model.set_rate(r)
            correct = 0
            for s in range(0, len(tx), 500):
                correct += int((model(torch.from_numpy(tx[s:s + 500])).argmax(1) == torch.from_numpy(ty[s:s + 500])).sum())
            rows.append({'rate': r, 'accuracy': correct / len(tx)})
    print(json.dumps({'rates': rows, 'trainSeconds': train_seconds, 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
