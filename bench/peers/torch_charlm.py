#!/usr/bin/env python3
"""PyTorch peer for the language-model training benchmark: the sliced character transformer of
models.transformer (pre-norm GPT blocks, learned positions, heads and feed-forward units as
slice groups), sliced the way the model-slicing reference code slices: weight views
weight[:out, :in] handed to the framework's ops, so a rate computes only its heads and units.

One step is the sandwich of bench/train-lm.mjs: rates 1, 0.5 and 0.25 on one batch of token ids,
the narrower rates distilled from rate 1 (KL to its detached softmax), gradients summed, one
AdamW step. Prints the best step time of --reps after two warm-up steps, as JSON.

  /usr/bin/python3 bench/peers/torch_charlm.py [--threads 2] [--reps 5] [--rates 1,0.5,0.25]
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F


def width(units, rate, groups):
    k = min(groups, max(1, math.ceil(rate * groups - 1e-9)))
    return units * k // groups


class Block(torch.nn.Module):
    def __init__(self, d, heads, ffn, ffn_groups):
        super().__init__()
        self.d, self.heads, self.ffn, self.ffn_groups = d, heads, ffn, ffn_groups
        self.ln1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.ModuleList([torch.nn.Linear(d, d) for _ in range(3)])
        self.out = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d)
        self.hidden = torch.nn.Linear(d, ffn)
        self.project = torch.nn.Linear(ffn, d)
        self.rate = 1.0

    def forward(self, x):
        B, T, d = x.shape
        h = width(self.heads, self.rate, self.heads)
        w = h * (d // self.heads)
        a = self.ln1(x)
        q, k, v = (F.linear(a, lin.weight[:w], lin.bias[:w]).view(B, T, h, -1).transpose(1, 2) for lin in self.qkv)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float('-inf')).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, w)
        x = x + F.linear(y, self.out.weight[:, :w], self.out.bias)
        u = width(self.ffn, self.rate, self.ffn_groups)
        m = F.relu(F.linear(self.ln2(x), self.hidden.weight[:u], self.hidden.bias[:u]))
        return x + F.linear(m, self.project.weight[:, :u], self.project.bias)


class CharLM(torch.nn.Module):
    def __init__(self, vocab, d, heads, layers, ffn, context, ffn_groups=8):
        super().__init__()
        self.tokens = torch.nn.Embedding(vocab, d)
        self.positions = torch.nn.Embedding(context, d)
        self.blocks = torch.nn.ModuleList([Block(d, heads, ffn, ffn_groups) for _ in range(layers)])
        self.norm = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab)

    def set_rate(self, r):
        for b in self.blocks:
            b.rate = r

    def forward(self, ids):
        T = ids.shape[1]
        x = self.tokens(ids) + self.positions(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--rates', default='1,0.5,0.25')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--context', type=int, default=128)
    p.add_argument('--d-model', type=int, default=256)
    p.add_argument('--heads', type=int, default=8)
    p.add_argument('--layers', type=int, default=4)
    p.add_argument('--vocab', type=int, default=65)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = CharLM(args.vocab, args.d_model, args.heads, args.layers, 4 * args.d_model, args.context)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    ids = torch.randint(0, args.vocab, (args.batch, args.context + 1))
    x, y = ids[:, :-1], ids[:, 1:].reshape(-1)
    rates = sorted((float(r) for r in args.rates.split(',')), reverse=True)

    def step():
        opt.zero_grad(set_to_none=True)
        teacher = None
        for i, r in enumerate(rates):
            model.set_rate(r)
            logits = model(x).reshape(-1, args.vocab)
            if i == 0:
                loss = F.cross_entropy(logits, y)
                teacher = logits.detach().softmax(-1)
            else:
                loss = F.kl_div(logits.log_softmax(-1), teacher, reduction='batchmean')
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(2):
        step()
    best = float('inf')
    for _ in range(args.reps):
        t0 = time.perf_counter()
        step()
        best = min(best, (time.perf_counter() - t0) * 1000)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({'ms': best, 'peakRssMiB': rss, 'torch': torch.__version__, 'threads': args.threads}))


if __name__ == '__main__':
    main()
