#!/usr/bin/env python3
"""Writes test/fixtures/torch-preresnet8-{group,batch}.safetensors: a PyTorch
pre-activation ResNet-8 (the model-slicing reference code's CIFAR layout and
parameter names) with random weights, a fixed input and PyTorch's output for it.
test/io/torch-import.test.ts loads the weights into ms.models.resnet and checks
the outputs agree. Run once with Debian's python3-torch:

    /usr/bin/python3 tools/make-torch-fixture.py

The safetensors writer below is the README's snippet: json + struct, no package.
"""
import json
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


def save_safetensors(tensors, path, metadata=None):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    if metadata:
        header['__metadata__'] = metadata
    raw = json.dumps(header).encode()
    raw += b' ' * ((8 - len(raw) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(raw)) + raw + b''.join(blobs))


def norm(kind, c):
    return nn.GroupNorm(min(8, c), c) if kind == 'group' else nn.BatchNorm2d(c)


class PreActBlock(nn.Module):
    def __init__(self, kind, cin, planes, stride):
        super().__init__()
        self.bn1 = norm(kind, cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2 = norm(kind, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False))

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (self.downsample(x) if self.downsample is not None else x)


class PreResNet(nn.Module):
    def __init__(self, kind, depth=8, classes=10, in_channels=3):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        cin, layers = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(PreActBlock(kind, cin, planes, stride if i == 0 else 1))
                cin = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn = norm(kind, cin)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        h = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        h = F.relu(self.bn(h))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


def main():
    for kind in ('group', 'batch'):
        torch.manual_seed(1 if kind == 'group' else 2)
        net = PreResNet(kind)
        # Non-trivial norm parameters and statistics, so the mapping of each is checked.
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        net.eval()
        x = torch.randn(3, 3, 16, 16)
        with torch.no_grad():
            logits = net(x)
        tensors = dict(net.state_dict())
        tensors = {k: v for k, v in tensors.items() if not k.endswith('num_batches_tracked')}
        tensors['input'] = x
        tensors['expected_logits'] = logits
        save_safetensors(tensors, f'test/fixtures/torch-preresnet8-{kind}.safetensors',
                         {'torch': torch.__version__, 'model': f'preresnet8-{kind}'})
        print(kind, 'written')


if __name__ == '__main__':
    main()
