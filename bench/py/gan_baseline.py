"""What a user would train instead (the baseline of docs/results/images.md): a class-conditional GAN
for 32x32 Fashion-MNIST in PyTorch, given a CPU-seconds budget, writing 1000
samples (100 per class) that drift-eval scores like drift's own.

    .venv/bin/python bench/py/gan_baseline.py --cpu-seconds 3600 --threads 2 --out results/gan_baseline.h5
    build/bin/drift-eval results/gan_baseline.h5

The model is a small conditional DCGAN: generator z (64) + class embedding ->
4x4x256 -> transposed convolutions to 32x32 (BatchNorm, ReLU, tanh); the
discriminator is a strided-convolution network with a projection term for the
class (Miyato & Koyama 2018), spectral normalisation, hinge loss, Adam
(2e-4, betas 0.0/0.9), batch 64, an EMA of the generator (0.999) for sampling.
The budget counts process CPU time (user + system, all threads), the same
measure as drift's cpu_time_s; the data are the training split's 60k images
(padded 28 -> 32, scaled to [-1, 1]), as drift's cells use them.
"""
import argparse
import copy
import gzip
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def load_train(data_dir):
    with gzip.open(os.path.join(data_dir, "train-images-idx3-ubyte.gz"), "rb") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"), "rb") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return torch.from_numpy(x).float().div(127.5).sub(1).unsqueeze(1), torch.from_numpy(y)


class Generator(nn.Module):
    def __init__(self, z_dim=64, classes=10, ch=64):
        super().__init__()
        self.z_dim = z_dim
        self.embed = nn.Embedding(classes, z_dim)
        self.fc = nn.Linear(2 * z_dim, 4 * ch * 4 * 4)
        self.net = nn.Sequential(
            nn.BatchNorm2d(4 * ch), nn.ReLU(True),
            nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1), nn.BatchNorm2d(2 * ch), nn.ReLU(True),   # 8x8
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.BatchNorm2d(ch), nn.ReLU(True),           # 16x16
            nn.ConvTranspose2d(ch, 1, 4, 2, 1), nn.Tanh())                                         # 32x32
        self.ch = ch

    def forward(self, z, y):
        h = self.fc(torch.cat([z, self.embed(y)], 1)).view(-1, 4 * self.ch, 4, 4)
        return self.net(h)


class Discriminator(nn.Module):
    def __init__(self, classes=10, ch=64):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(1, ch, 4, 2, 1)), nn.LeakyReLU(0.2, True),            # 16x16
            sn(nn.Conv2d(ch, 2 * ch, 4, 2, 1)), nn.LeakyReLU(0.2, True),       # 8x8
            sn(nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1)), nn.LeakyReLU(0.2, True))   # 4x4
        self.fc = sn(nn.Linear(4 * ch * 16, 1))
        self.embed = sn(nn.Embedding(classes, 4 * ch * 16))

    def forward(self, x, y):
        h = self.net(x).flatten(1)
        return self.fc(h).squeeze(1) + (self.embed(y) * h).sum(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-seconds", type=float, default=3600.0, help="budget of process CPU time")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=DATA)
    ap.add_argument("--out", default="results/gan_baseline.h5")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cpu0 = time.process_time()
    x_all, y_all = load_train(args.data_dir)
    G, D = Generator(), Discriminator()
    G_ema = copy.deepcopy(G).eval()
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    n = x_all.shape[0]
    step, t0, last = 0, time.time(), 0.0
    while True:
        used = time.process_time() - cpu0
        if used >= args.cpu_seconds:
            break
        idx = torch.randint(n, (args.batch,))
        x, y = x_all[idx], y_all[idx]
        z = torch.randn(args.batch, G.z_dim)
        fake = G(z, y)
        d_loss = F.relu(1 - D(x, y)).mean() + F.relu(1 + D(fake.detach(), y)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = -D(fake, y).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - 0.999)
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        step += 1
        if time.time() - last > 30:
            last = time.time()
            cpu_per_wall = used / max(last - t0, 1e-9)  # CPU seconds spent per wall second
            print(f"step {step}  d {d_loss.item():.3f}  g {g_loss.item():.3f}  {step / (last - t0):.1f} steps/s  "
                  f"CPU {used:.0f}/{args.cpu_seconds:.0f} s  ETA {(args.cpu_seconds - used) / cpu_per_wall:.0f} s",
                  flush=True)
    cpu = time.process_time() - cpu0
    with torch.no_grad():
        gen = torch.Generator().manual_seed(args.seed + 1)
        labels = torch.arange(10).repeat_interleave(100)
        samples = G_ema(torch.randn(1000, G.z_dim, generator=gen), labels).clamp(-1, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + f".tmp-{os.getpid()}"
    with h5py.File(tmp, "w") as f:
        f["samples"] = samples.numpy().astype(np.float32)
        f["labels"] = labels.numpy()
        f.attrs["steps"] = step
        f.attrs["cpu_time_s"] = cpu
        f.attrs["threads"] = args.threads
        f.attrs["model"] = "conditional DCGAN, projection discriminator, hinge loss, EMA 0.999"
    os.replace(tmp, args.out)
    print(f"gan_baseline: {step} steps in {cpu:.0f} CPU s -> {args.out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
