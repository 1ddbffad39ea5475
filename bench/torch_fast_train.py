#!/usr/bin/python3
"""FastNet's training recipe (scripts/train-fast.sh) in PyTorch, on the same CIFAR-10 files: the
reference that tells whether an accuracy gap is ManualCNN's or the data's. Same layout (2x2
whitening conv from the patch covariance of 5,000 normalised images, three conv/pool/BN/GELU blocks
64/256/256 with dirac init, BN momentum 0.4 eps 1e-12 weight fixed at 1, logits x 1/9), same
optimisation (mean loss with label smoothing 0.2; Nesterov SGD lr 1.5 momentum 0.85 weight decay
1.3304e-3, batch-norm biases lr x64 weight decay 2.0788e-5; one-cycle 0.2 -> 1 at 23 % -> 0.07 per
step), same augmentation (reflect crop-pad 2 per image, alternating flip from a per-image coin).
The validation split is drawn here with numpy (the same size as ManualCNN's, not the same images).

Usage: torch_fast_train.py DATA_DIR [--epochs E] [--validation N] [--threads T] [--seed S]
Prints one line per epoch with the validation accuracy (no TTA) and the elapsed seconds."""
import argparse
import os
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def load(directory, names):
    raw = np.concatenate([np.fromfile(os.path.join(directory, n), dtype=np.uint8).reshape(-1, 3073) for n in names])
    images = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255)
    return images, torch.from_numpy(raw[:, 0].astype(np.int64))


class Norm(nn.BatchNorm2d):
    def __init__(self, channels):
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad = False


def conv3(cin, cout):
    c = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    nn.init.dirac_(c.weight.data[:cin])
    return c


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1, self.norm1, self.conv2, self.norm2 = conv3(cin, cout), Norm(cout), conv3(cout, cout), Norm(cout)

    def forward(self, x):
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, bias=True)
        self.whiten.weight.requires_grad = False
        self.block1, self.block2, self.block3 = Block(24, 64), Block(64, 256), Block(256, 256)
        self.head = nn.Linear(256, 10, bias=False)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(F.gelu(self.whiten(x)))))
        return self.head(F.max_pool2d(x, 3).flatten(1)) / 9

    def init_whitening(self, images):
        patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
        values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (vectors.T / torch.sqrt(values.clamp(min=0) + 5e-4)[:, None]).flip(0).reshape(12, 3, 2, 2)
        self.whiten.weight.data[:] = torch.cat((filters, -filters)).float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--validation", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=1024)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    x, y = load(a.data, [f"data_batch_{i}.bin" for i in range(1, 6)])
    order = torch.from_numpy(rng.permutation(len(x)))
    val_x, val_y = x[order[:a.validation]], y[order[:a.validation]]
    x, y = x[order[a.validation:]], y[order[a.validation:]]
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    x, val_x = (x - mean) / std, (val_x - mean) / std
    padded = F.pad(x, (2,) * 4, mode="reflect")
    coin = torch.rand(len(x)) < 0.5  # the alternating flip's per-image start

    model = Net()
    model.init_whitening(x[:5000])
    norm_biases = [p for n, p in model.named_parameters() if "norm" in n and p.requires_grad]
    others = [p for n, p in model.named_parameters() if "norm" not in n and p.requires_grad]
    opt = torch.optim.SGD([dict(params=norm_biases, lr=1.5 * 64, weight_decay=2.0788e-5),
                           dict(params=others, lr=1.5, weight_decay=1.3304e-3)], lr=1.5, momentum=0.85, nesterov=True)
    base_lr = [g["lr"] for g in opt.param_groups]
    batches = (len(x) + a.batch - 1) // a.batch
    start = time.perf_counter()
    for epoch in range(a.epochs):
        model.train()
        shifts = torch.randint(0, 5, (len(x), 2))
        flips = coin ^ (epoch % 2 == 1)
        perm = torch.randperm(len(x))
        for b in range(batches):
            t = epoch + b / batches
            factor = np.interp(t, [0, 0.23 * a.epochs, a.epochs], [0.2, 1, 0.07])
            for g, lr in zip(opt.param_groups, base_lr):
                g["lr"] = lr * factor
            idx = perm[b * a.batch:(b + 1) * a.batch]
            xb = torch.empty(len(idx), 3, 32, 32)
            for sy in range(5):
                for sx in range(5):
                    m = (shifts[idx, 0] == sy) & (shifts[idx, 1] == sx)
                    xb[m] = padded[idx[m], :, sy:sy + 32, sx:sx + 32]
            f = flips[idx]
            xb[f] = xb[f].flip(3)
            loss = F.cross_entropy(model(xb), y[idx], label_smoothing=0.2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(val_x[i:i + 1000]).argmax(1) == val_y[i:i + 1000]).sum().item()
                          for i in range(0, len(val_x), 1000))
        print(f"RESULT epoch={epoch + 1} validation_accuracy={100 * correct / len(val_x):.2f} "
              f"train_loss_last={loss.item():.4f} elapsed_s={time.perf_counter() - start:.0f}", flush=True)


main()
