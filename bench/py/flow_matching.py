"""A class-conditional flow-matching (rectified flow) peer for drift's image recipe: 32x32
Fashion-MNIST, trained for a CPU-seconds budget, sampled at any number of function evaluations
(NFE), each setting written as 1000 samples (100 per class) that drift-eval scores like drift's own.

    # train (and sample at the end); the EMA weights go to OUT.pt
    .venv/bin/python bench/py/flow_matching.py train --cpu-seconds 3444 --threads 1 --seed 0 \
        --out results/flow/fm_s0 --sample-nfe 1,2,4,8,16,32
    # sample again from the saved weights (other NFEs, Heun, guidance)
    .venv/bin/python bench/py/flow_matching.py sample results/flow/fm_s0.pt --nfe 4,16 \
        --solver heun --guidance 1.5 --out results/flow/fm_s0
    build/bin/drift-eval results/flow/fm_s0_euler_nfe16.h5

Model and objective. Rectified flow (Liu et al. 2022; Lipman et al. 2022): x_t = (1 - t) x0 + t x1
with x0 ~ N(0, I) the noise and x1 a training image, and the network v(x_t, t, y) regresses the
constant velocity x1 - x0 (mean squared error). t is drawn logit-normal (sigmoid of N(0, 1); Esser
et al. 2024 found it the best of the rectified-flow t distributions they compared): it puts the
training signal on the middle of the path, where the velocity is hardest to predict, rather than
on the ends where it is nearly the data mean (t = 0) or nearly the identity (t = 1).
The network is a small U-Net (GroupNorm, SiLU, residual blocks at 32, 16 and 8 px, self-attention
at 8 px) with the embeddings of t (sinusoidal + MLP) and of the class added in every block. The
class embedding has an 11th "null" entry; each training label is replaced by it with probability
--p-uncond (0.1), so the same network gives the unconditional velocity for classifier-free
guidance: v = v_null + w (v_y - v_null). AdamW (betas 0.9/0.99, weight decay 0), batch 64, an EMA
of the weights (decay min(--ema, (1 + step) / (10 + step))) is what is saved and sampled.

Data as drift's cells use them: the training split's images padded 28 -> 32 (zeros, i.e. -1
after scaling) and scaled to [-1, 1]; --split fit (default) trains on its first 50,000 images,
the last 10,000 being drift's validation split (drift-eval --reference validation scores
against them); --split train uses all 60,000.

Sampling integrates dx/dt = v from t = 0 (noise) to 1 on a uniform grid: Euler costs one
evaluation per step; Heun (trapezoid) costs two per step except the last, which is an Euler
step, so NFE = 2 * steps - 1. Guidance doubles the evaluations (conditional and null label in one
batch); the file's attrs record `nfe` (velocity evaluations per sample, guidance included) and
`sample_cpu_s_per_1000` (process CPU time, user + system, of producing the 1000 samples at
--threads). The noise and labels are fixed (--sample-seed), the same for every setting.

The budget counts process CPU time (user + system, all threads), the same measure as drift's
cpu_time_s. Progress lines go to stderr.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = 10
FIT = 50000  # the first 50k training images; the last 10k are drift's validation split


def load_train(data_dir, split):
    with gzip.open(os.path.join(data_dir, "train-images-idx3-ubyte.gz"), "rb") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"), "rb") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    if split == "fit":
        x, y = x[:FIT], y[:FIT]
    elif split != "train":
        raise SystemExit(f"--split {split}: expected fit or train")
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return torch.from_numpy(x).float().div(127.5).sub(1).unsqueeze(1), torch.from_numpy(y)


# ------------------------------------------------------------------------------------ network
def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = (1000.0 * t)[:, None] * freqs[None]
    return torch.cat([a.cos(), a.sin()], 1)


def norm(c):
    return nn.GroupNorm(min(8, c), c)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, dropout=0.0):
        super().__init__()
        self.n1, self.c1 = norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, 2 * cout)
        self.n2, self.c2 = norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x, e):
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.emb(F.silu(e))[:, :, None, None].chunk(2, 1)
        h = self.n2(h) * (1 + scale) + shift
        h = self.c2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, c, heads=4):
        super().__init__()
        self.n, self.qkv, self.out, self.heads = norm(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1), heads
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        b, c, hh, ww = x.shape
        q, k, v = self.qkv(self.n(x)).reshape(b, 3, self.heads, c // self.heads, hh * ww).unbind(1)
        o = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(o.transpose(-1, -2).reshape(b, c, hh, ww))


class UNet(nn.Module):
    """32 -> 16 -> 8 px, widths ch * mult, `blocks` residual blocks per level, attention at 8 px."""

    def __init__(self, ch=32, mult=(1, 2, 2), blocks=1, attn=True, dropout=0.0):
        super().__init__()
        emb = 4 * ch
        self.ch = ch
        self.t_mlp = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.y_emb = nn.Embedding(CLASSES + 1, emb)  # index CLASSES = null label
        self.inp = nn.Conv2d(1, ch, 3, padding=1)
        widths = [ch * m for m in mult]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [ch], ch
        for i, w in enumerate(widths):
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(c, w, emb, dropout))
                c = w
                skips.append(c)
            self.down.append(level)
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, emb, dropout)
        self.mid_attn = Attention(c) if attn else nn.Identity()
        self.mid2 = ResBlock(c, c, emb, dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            level = nn.ModuleList()
            for _ in range(blocks + 1):
                level.append(ResBlock(c + skips.pop(), w, emb, dropout))
                c = w
            self.up.append(level)
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.out = nn.Sequential(norm(c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x, t, y):
        e = self.t_mlp(timestep_embedding(t, self.ch)) + self.y_emb(y)
        h = self.inp(x)
        hs = [h]
        for i, level in enumerate(self.down):
            for blk in level:
                h = blk(h, e)
                hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, e)), e)
        for i, level in enumerate(self.up):
            for blk in level:
                h = blk(torch.cat([h, hs.pop()], 1), e)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(h)


def build(cfg):
    return UNet(ch=cfg["ch"], mult=tuple(cfg["mult"]), blocks=cfg["blocks"], attn=cfg["attn"])


# ------------------------------------------------------------------------------------ sampling
@torch.no_grad()
def velocity(model, x, t, y, guidance):
    tt = torch.full((x.shape[0],), t)
    if guidance == 1.0:
        return model(x, tt, y)
    null = torch.full_like(y, CLASSES)
    vc, vu = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, null])).chunk(2)
    return vu + guidance * (vc - vu)


@torch.no_grad()
def integrate(model, x0, y, nfe, solver, guidance, batch=250):
    """x0 [N,1,32,32] noise -> samples at t = 1. nfe counts velocity evaluations without guidance."""
    if solver == "euler":
        steps = nfe
    else:
        if nfe % 2 == 0:
            raise SystemExit(f"heun: NFE {nfe} is not 2 * steps - 1")
        steps = (nfe + 1) // 2
    grid = torch.linspace(0, 1, steps + 1).tolist()
    out = []
    for s in range(0, x0.shape[0], batch):
        x, yy = x0[s:s + batch].clone(), y[s:s + batch]
        for i in range(steps):
            t, dt = grid[i], grid[i + 1] - grid[i]
            v = velocity(model, x, t, yy, guidance)
            if solver == "heun" and i < steps - 1:
                v2 = velocity(model, x + dt * v, grid[i + 1], yy, guidance)
                v = 0.5 * (v + v2)
            x = x + dt * v
        out.append(x)
    return torch.cat(out).clamp(-1, 1)


def write_samples(path, samples, labels, attrs):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + f".tmp-{os.getpid()}"
    with h5py.File(tmp, "w") as f:
        f["samples"] = samples.numpy().astype(np.float32)
        f["labels"] = labels.numpy()
        for k, v in attrs.items():
            f.attrs[k] = v
    os.replace(tmp, path)


def sample_settings(model, ckpt, prefix, nfes, solver, guidance, sample_seed, threads):
    torch.set_num_threads(threads)
    model.eval()
    gen = torch.Generator().manual_seed(sample_seed)
    labels = torch.arange(CLASSES).repeat_interleave(100)
    noise = torch.randn(1000, 1, 32, 32, generator=gen)
    paths = []
    for nfe in nfes:
        c0 = time.process_time()
        x = integrate(model, noise, labels, nfe, solver, guidance)
        cpu = time.process_time() - c0
        total_nfe = nfe * (2 if guidance != 1.0 else 1)
        g = "" if guidance == 1.0 else f"_g{guidance:g}"
        path = f"{prefix}_{solver}_nfe{nfe}{g}.h5"
        write_samples(path, x, labels, {
            "nfe": total_nfe, "solver_steps_nfe": nfe, "solver": solver, "guidance": guidance,
            "sample_cpu_s_per_1000": cpu, "threads": threads, "sample_seed": sample_seed,
            "train_steps": ckpt["step"], "train_cpu_time_s": ckpt["cpu_time_s"],
            "config": json.dumps(ckpt["config"]),
            "model": "class-conditional U-Net, rectified flow, EMA weights"})
        print(f"flow_matching: {solver} NFE {total_nfe} (guidance {guidance:g}): {cpu:.1f} CPU s "
              f"per 1000 -> {path}", file=sys.stderr, flush=True)
        paths.append(path)
    return paths


def parse_list(s, f):
    return [f(v) for v in s.split(",") if v]


# ------------------------------------------------------------------------------------ train
def train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cpu0 = time.process_time()
    x_all, y_all = load_train(args.data_dir, args.split)
    cfg = {"ch": args.ch, "mult": parse_list(args.mult, int), "blocks": args.blocks, "attn": not args.no_attn,
           "lr": args.lr, "batch": args.batch, "ema": args.ema, "p_uncond": args.p_uncond,
           "t_dist": args.t_dist, "warmup": args.warmup, "split": args.split, "seed": args.seed}
    model = build(cfg)
    ema = build(cfg)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    params = sum(p.numel() for p in model.parameters())
    print(f"flow_matching: {params / 1e6:.2f} M parameters, config {json.dumps(cfg)}", file=sys.stderr, flush=True)
    opt = torch.optim.AdamW(model.parameters(), args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    n = x_all.shape[0]
    step, t_wall0, last, loss_avg, next_save = 0, time.time(), 0.0, None, args.save_every
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)

    def save(path, cpu):
        ckpt = {"ema": ema.state_dict(), "config": cfg, "step": step, "cpu_time_s": cpu, "params": params,
                "threads": args.threads, "final_loss": loss_avg}
        tmp = path + f".tmp-{os.getpid()}"
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
        return ckpt

    while True:
        used = time.process_time() - cpu0
        if used >= args.cpu_seconds:
            break
        idx = torch.randint(n, (args.batch,))
        x1, y = x_all[idx], y_all[idx].clone()
        y[torch.rand(args.batch) < args.p_uncond] = CLASSES
        x0 = torch.randn_like(x1)
        if args.t_dist == "logit-normal":
            t = torch.sigmoid(torch.randn(args.batch))
        else:
            t = torch.rand(args.batch)
        tb = t[:, None, None, None]
        xt = (1 - tb) * x0 + tb * x1
        loss = F.mse_loss(model(xt, t, y), x1 - x0)
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), model.parameters()):
                pe.lerp_(p, 1 - decay)
        step += 1
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        if args.save_every > 0 and used >= next_save:
            save(f"{args.out}_cpu{int(next_save)}.pt", used)
            next_save += args.save_every
        if time.time() - last > 30:
            last = time.time()
            print(f"step {step}  loss {loss_avg:.4f}  {step / (used + 1e-9):.2f} steps/CPU-s  "
                  f"CPU {used:.0f}/{args.cpu_seconds:.0f} s  CPU-s left {args.cpu_seconds - used:.0f}  "
                  f"wall {last - t_wall0:.0f} s", file=sys.stderr, flush=True)
    cpu = time.process_time() - cpu0
    ckpt = save(args.out + ".pt", cpu)
    print(f"flow_matching: {step} steps in {cpu:.0f} CPU s ({params / 1e6:.2f} M parameters) -> {args.out}.pt",
          file=sys.stderr, flush=True)
    if args.sample_nfe:
        sample_settings(ema, ckpt, args.out, parse_list(args.sample_nfe, int), "euler", 1.0,
                        args.sample_seed, args.threads)


def sample(args):
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    model = build(ckpt["config"])
    model.load_state_dict(ckpt["ema"])
    prefix = args.out or os.path.splitext(args.checkpoint)[0]
    for g in parse_list(args.guidance, float):
        sample_settings(model, ckpt, prefix, parse_list(args.nfe, int), args.solver, g, args.sample_seed, args.threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    tr = sub.add_parser("train", help="train for a CPU budget; save the EMA weights to OUT.pt")
    tr.add_argument("--cpu-seconds", type=float, default=3444.0, help="budget of process CPU time")
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--split", default="fit", help="fit (first 50k training images) or train (all 60k)")
    tr.add_argument("--ch", type=int, default=32, help="base width of the U-Net")
    tr.add_argument("--mult", default="1,2,2", help="width multipliers at 32, 16, 8 px")
    tr.add_argument("--blocks", type=int, default=1, help="residual blocks per level")
    tr.add_argument("--no-attn", action="store_true", help="no self-attention at 8 px")
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--warmup", type=int, default=200, help="linear lr warm-up steps")
    tr.add_argument("--batch", type=int, default=64)
    tr.add_argument("--ema", type=float, default=0.999)
    tr.add_argument("--p-uncond", type=float, default=0.1, help="share of labels replaced by the null label")
    tr.add_argument("--t-dist", default="logit-normal", choices=["logit-normal", "uniform"])
    tr.add_argument("--save-every", type=float, default=0.0,
                    help="also save the EMA weights every this many CPU-s (OUT_cpuN.pt; 0: only at the end)")
    tr.add_argument("--sample-nfe", default="", help="after training, Euler samples at these NFEs (list)")
    tr.add_argument("--sample-seed", type=int, default=1234)
    tr.add_argument("--data-dir", default=DATA)
    tr.add_argument("--out", required=True, help="prefix: OUT.pt, OUT_euler_nfeN.h5")
    sa = sub.add_parser("sample", help="write 1000 samples per NFE from a saved checkpoint")
    sa.add_argument("checkpoint")
    sa.add_argument("--nfe", default="1,2,4,8,16,32", help="solver evaluations per sample (list)")
    sa.add_argument("--solver", default="euler", choices=["euler", "heun"])
    sa.add_argument("--guidance", default="1", help="classifier-free guidance scales (list; 1 = none)")
    sa.add_argument("--threads", type=int, default=1)
    sa.add_argument("--sample-seed", type=int, default=1234)
    sa.add_argument("--out", default="", help="prefix of the sample files (default: the checkpoint's)")
    args = ap.parse_args()
    return train(args) if args.mode == "train" else sample(args)


if __name__ == "__main__":
    sys.exit(main())
