#!/usr/bin/env python3
"""PyTorch's gradients at the weights bench/peers/grad-check.mjs wrote: per step, the losses
at each rate and the relative error (L2 over each parameter) of our gradient and of
PyTorch's float32 gradient against PyTorch's float64 one; the worst parameters are listed.

  /usr/bin/python3 bench/peers/torch_grad_check.py FILE.safetensors
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_slicing import PreActResNet  # noqa: E402


def read(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop('__metadata__', {})
    tensors = {}
    for k, v in header.items():
        a, b = v['data_offsets']
        tensors[k] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(v['shape']).copy())
    return tensors, meta


def rel(a, b):
    return float((a.double() - b.double()).norm() / (b.double().norm() + 1e-30))


def main():
    torch.set_num_threads(2)
    tensors, meta = read(sys.argv[1])
    names = json.loads(meta['names'])
    for s in json.loads(meta['steps']):
        k = s['step']
        x, y = tensors[f'step{k}.x'], tensors[f'step{k}.y'].long()
        grads, losses = {}, {}
        for dtype in (torch.float32, torch.float64):
            model = PreActResNet(20, 10, x.shape[1]).to(dtype).train()
            params = list(model.parameters())
            with torch.no_grad():
                for p, name in zip(params, names):
                    p.copy_(tensors[f'step{k}.weight.{name}'])
            losses[dtype] = []
            for r in s['rates']:
                model.set_rate(r)
                loss = F.cross_entropy(model(x.to(dtype)), y)
                loss.backward()
                losses[dtype].append(loss.item())
            grads[dtype] = {name: p.grad.detach() for p, name in zip(params, names)}
        g64 = grads[torch.float64]
        ours = {name: tensors[f'step{k}.grad.{name}'] for name in names}
        norm = sum(float(g.double().norm()) ** 2 for g in ours.values()) ** 0.5
        total = (sum(float((ours[n].double() - g64[n]).norm()) ** 2 for n in names) ** 0.5) / (sum(float(g64[n].norm()) ** 2 for n in names) ** 0.5)
        total32 = (sum(float((grads[torch.float32][n].double() - g64[n]).norm()) ** 2 for n in names) ** 0.5) / (sum(float(g64[n].norm()) ** 2 for n in names) ** 0.5)
        print(f'step {k}, rates {s["rates"]}: losses ours {["%.4f" % v for v in s["losses"]]}, PyTorch float64 {["%.4f" % v for v in losses[torch.float64]]}; '
              f'gradient norm {norm:.3f}; error against float64: ours {total:.1e}, PyTorch float32 {total32:.1e}')
        worst = sorted(((rel(ours[n], g64[n]), rel(grads[torch.float32][n], g64[n]), n) for n in names), reverse=True)[:3]
        print('  worst parameters (ours, PyTorch float32):', ', '.join(f'{n} {a:.1e} {b:.1e}' for a, b, n in worst))


if __name__ == '__main__':
    main()
