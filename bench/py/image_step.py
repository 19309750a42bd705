"""The training step of experiments/recipes/fmnist_best.toml written in plain
PyTorch, the way public drifting implementations write it: the peer of drift's
image step in bench/compare_image_step.sh.

One step, with the shapes of the recipe:
  - 10 classes (a random permutation of the 10 Fashion-MNIST classes), per
    class 8 generated samples, 32 positives of the class and 4 unconditional
    negatives (real images of any class); alpha per class drawn from
    p(alpha) ~ alpha^-3 on [1, 4], negatives weighted (alpha - 1)(8 - 1)/4
    (docs/method.md §5);
  - the `conv` generator (plugins/generators/conv: width 64, 2 upsamplings,
    2 residual blocks per resolution as in the recipe (--blocks), noise 16 x 8 x 8, condition 128 = class
    embedding + MLP of log alpha, adaptive GroupNorm);
  - the frozen MAE ResNet encoder (plugins/encoders/resnet: widths 32/64/128,
    one basic block per stage, GroupNorm 8), its weights loaded from
    results/encoders/mae_resnet-ae8757210cbf.pt (the recipe's file) when
    present, else random weights of the same shape (the cost is the same);
    generated samples are encoded with gradient, positives and negatives
    under no_grad, every step (the real-feature cache is a drift feature);
  - the feature set of drift/features.hpp for maps s1, s2, s3 (raw, x2, and
    per map .loc, .mean, .std, .p2.mean/.std, .p4.mean/.std where they
    exist: 21 features), one batched drift field per feature over
    B = classes x locations problems (bench/py/drift_field.py, the plain
    PyTorch field that writes the golden cases), temperatures 0.02/0.05/0.2;
  - loss sum over features of mean((x / s - goal)^2), AdamW (lr 1e-3 with
    linear warm-up, betas 0.9/0.95, weight decay 0.01), gradient clipping at
    norm 2, EMA of the weights (decay min(0.995, (1+t)/(10+t))).

Modes: eager, and `compile`: torch.compile (default inductor backend) of the
forward pass and loss (generator, encoder, feature set, fields); the backward
pass goes through the compiled graph; optimizer and EMA stay eager. The
compile time (first steps) is excluded from the rate and printed.

Prints one `key value` line per result: steps/s, ms/step (median over the
timed steps), CPU s/step (process user+sys), the phase breakdown (ms/step,
median per phase), the first and last loss.
  python bench/py/image_step.py --mode eager --threads 1 --steps 20
  python bench/py/image_step.py --mode eager --threads 1 --steps 2 --op-profile 3   # operator table
"""
import argparse
import gzip
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from drift_field import drift_field  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
WEIGHTS = os.path.join(ROOT, "results", "encoders", "mae_resnet-ae8757210cbf.pt")
FMNIST = "/usr/share/datasets/fashion-mnist"
TEMPS = (0.02, 0.05, 0.2)
N_CLASSES, N_GEN, N_POS, N_UNC = 10, 8, 32, 4
VAR_EPS = 1e-6


# --- generator: plugins/generators/conv/conv.cpp ---------------------------------
def conv3x3(i, o):
    return nn.Conv2d(i, o, 3, padding=1)


class AdaGN(nn.Module):
    def __init__(self, ch, emb):
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(ch, 8), ch, affine=False)
        self.film = nn.Linear(emb, 2 * ch)

    def forward(self, h, c):
        scale, shift = self.film(F.silu(c))[:, :, None, None].chunk(2, 1)
        return self.norm(h) * (1 + scale) + shift


class ResBlock(nn.Module):
    def __init__(self, ch, emb):
        super().__init__()
        self.norm1, self.conv1 = AdaGN(ch, emb), conv3x3(ch, ch)
        self.norm2, self.conv2 = AdaGN(ch, emb), conv3x3(ch, ch)

    def forward(self, h, c):
        y = self.conv1(F.silu(self.norm1(h, c)))
        y = self.conv2(F.silu(self.norm2(y, c)))
        return h + y


class ConvGenerator(nn.Module):
    def __init__(self, width=64, levels=2, blocks=1, noise_ch=16, emb=128, n_classes=10, out_ch=1):
        super().__init__()
        self.levels, self.blocks, self.noise_ch = levels, blocks, noise_ch
        ch = [max(width >> l, 16) for l in range(levels + 1)]
        self.cond_base = nn.Parameter(torch.zeros(emb))
        self.y_embedder = nn.Embedding(n_classes, emb)
        self.a_fc1, self.a_fc2 = nn.Linear(1, emb), nn.Linear(emb, emb)
        self.conv_in = conv3x3(noise_ch, ch[0])
        self.stages = nn.ModuleList(nn.ModuleList(ResBlock(ch[l], emb) for _ in range(blocks))
                                    for l in range(levels + 1))
        self.up = nn.ModuleList(conv3x3(ch[l], ch[l + 1]) for l in range(levels))
        self.norm_out = nn.GroupNorm(math.gcd(ch[-1], 8), ch[-1])
        self.conv_out = conv3x3(ch[-1], out_ch)

    def forward(self, z, labels, alpha):
        c = self.cond_base[None] + self.y_embedder(labels)
        c = c + self.a_fc2(F.silu(self.a_fc1(torch.log(alpha)[:, None])))
        if CHANNELS_LAST:
            z = z.contiguous(memory_format=torch.channels_last)
        h = self.conv_in(z)
        for l, stage in enumerate(self.stages):
            for b in stage:
                h = b(h, c)
            if l < self.levels:
                h = self.up[l](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


# --- encoder: plugins/encoders/resnet/resnet.cpp (parameter names match the .pt) --
def gn(ch, groups=8):
    return nn.GroupNorm(math.gcd(groups, ch), ch)


class BasicBlock(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1, self.gn1 = nn.Conv2d(i, o, 3, stride, 1, bias=False), gn(o)
        self.conv2, self.gn2 = nn.Conv2d(o, o, 3, 1, 1, bias=False), gn(o)
        self.shortcut = (nn.Sequential(nn.Conv2d(i, o, 1, stride, 0, bias=False), gn(o))
                         if stride != 1 or i != o else None)

    def forward(self, x):
        h = F.relu(self.gn1(self.conv1(x)))
        h = self.gn2(self.conv2(h))
        return F.relu(h + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    def __init__(self, widths=(32, 64, 128), in_ch=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False), gn(widths[0]), nn.ReLU())
        prev = widths[0]
        for i, w in enumerate(widths):
            setattr(self, f"stage{i + 1}", nn.ModuleList([BasicBlock(prev, w, 2)]))
            prev = w
        self.n = len(widths)

    def forward(self, x):  # -> [s1, s2, s3]
        h, out = self.stem(x), []
        for i in range(self.n):
            for b in getattr(self, f"stage{i + 1}"):
                h = b(h)
            out.append(h)
        return out


# --- feature set: framework/src/sdk/features.cpp --------------------------------
def as_locations(m):  # [G, N, C, A, B] -> [G, A*B, N, C]
    G, N, C, A, B = m.shape
    return m.permute(0, 3, 4, 1, 2).reshape(G, A * B, N, C)


def feature_set(x, maps):
    """x [G, N, C, H, W], maps [G, N, C_i, H_i, W_i] -> list of [G, L, N, D]."""
    G, N = x.shape[:2]
    out = [x.reshape(G, 1, N, -1), (x.pow(2).mean((3, 4)) + VAR_EPS).sqrt()[:, None]]
    for m in maps:
        H, W = m.shape[3:]
        out.append(as_locations(m))
        if H * W > 1:
            out.append(m.mean((3, 4))[:, None])
            out.append((m.var((3, 4), unbiased=False) + VAR_EPS).sqrt()[:, None])
        for p in (2, 4):
            if H < p or W < p or (H == p and W == p):
                continue
            hp, wp = H // p, W // p
            t = m[..., :hp * p, :wp * p].reshape(G, N, m.shape[2], hp, p, wp, p)
            mean = t.mean((4, 6), keepdim=True)
            var = (t - mean).pow(2).mean((4, 6))
            out.append(as_locations(mean[:, :, :, :, 0, :, 0]))
            out.append(as_locations((var + VAR_EPS).sqrt()))
    return out


CHANNELS_LAST = False


def encode(enc, x):  # x [G, N, C, H, W]
    G, N = x.shape[:2]
    flat = x.reshape(G * N, *x.shape[2:])
    if CHANNELS_LAST:
        flat = flat.contiguous(memory_format=torch.channels_last)
    maps = [m.reshape(G, N, *m.shape[1:]) for m in enc(flat)]
    return feature_set(x, maps)


def problems(f):  # [G, L, N, D] -> [G*L, N, D]
    return f.reshape(f.shape[0] * f.shape[1], f.shape[2], f.shape[3])


def field_loss(gen_feats, pos_feats, neg_feats, w_neg):
    """Sum over features of the mean drift loss; one batched field per feature."""
    loss = 0.0
    m_tau = []
    for g, p, n in zip(gen_feats, pos_feats, neg_feats):
        L = g.shape[1]
        gb = problems(g)
        with torch.no_grad():
            goal, _, m, _, s = drift_field(gb.detach(), problems(p), problems(n),
                                           w_neg=w_neg.repeat_interleave(L, 0), temperatures=TEMPS)
        loss = loss + ((gb / s - goal) ** 2).mean((1, 2)).mean()
        m_tau.append(m)
    return loss, torch.stack(m_tau).mean(0)


# --- data ------------------------------------------------------------------------
def load_fmnist():
    """Training images as [60000, 1, 32, 32] in [-1, 1] (28x28 padded by 2) and labels."""
    try:
        with gzip.open(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")) as f:
            img = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz")) as f:
            lab = np.frombuffer(f.read(), np.uint8, offset=8)
        x = torch.from_numpy(img.copy()).float().div(127.5).sub(1.0)
        x = F.pad(x, (2, 2, 2, 2), value=-1.0)[:, None]
        return x, torch.from_numpy(lab.astype(np.int64)), "fashion-mnist"
    except OSError:
        g = torch.Generator().manual_seed(0)
        return torch.rand(60000, 1, 32, 32, generator=g) * 2 - 1, torch.arange(60000) % 10, "random images"


def draw_alpha(rng, lo=1.0, hi=4.0, k=3.0):
    v = torch.rand((), generator=rng, dtype=torch.float64).item()
    a, b = lo ** (1 - k), hi ** (1 - k)
    return (a + v * (b - a)) ** (1 / (1 - k))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--blocks", type=int, default=2,
                    help="residual blocks per resolution in the generator (the recipe's [generator] blocks)")
    ap.add_argument("--warmup-steps", type=int, default=3, help="untimed steps (compile happens here)")
    ap.add_argument("--channels-last", action="store_true",
                    help="generator and encoder weights and inputs in channels-last (NHWC) memory "
                         "format (what inductor's layout optimisation does for the convolutions)")
    ap.add_argument("--op-profile", type=int, default=0,
                    help="after the timed steps, run this many steps under torch.profiler and print "
                         "the operators with the most self CPU time")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    images, labels_all, data_name = load_fmnist()
    by_class = [torch.nonzero(labels_all == c).flatten() for c in range(10)]
    gen = ConvGenerator(blocks=a.blocks)
    enc = ResNet()
    weights = "random (no weights file)"
    if os.path.exists(WEIGHTS):
        enc.load_state_dict(torch.jit.load(WEIGHTS).state_dict())
        weights = os.path.relpath(os.path.normpath(WEIGHTS), os.path.normpath(ROOT))
    enc.eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    global CHANNELS_LAST
    CHANNELS_LAST = a.channels_last
    if a.channels_last:
        gen.to(memory_format=torch.channels_last)
        enc.to(memory_format=torch.channels_last)
    params = list(gen.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01)
    ema = [p.detach().clone() for p in params]
    rng = torch.Generator().manual_seed(1)

    def forward_loss(z, labels, alpha, pos, neg, w_neg):
        x = gen(z, labels, alpha)
        gen_feats = encode(enc, x.view(N_CLASSES, N_GEN, *x.shape[1:]))
        with torch.no_grad():
            pos_feats = encode(enc, pos)
            neg_feats = encode(enc, neg)
        return field_loss(gen_feats, pos_feats, neg_feats, w_neg)

    compiled = torch.compile(forward_loss) if a.mode == "compile" else None

    def step(t, times):
        clock = [time.perf_counter()]

        def lap(name):
            now = time.perf_counter()
            times[name] = times.get(name, 0.0) + now - clock[0]
            clock[0] = now

        lr = 1e-3 * min(1.0, t / 100)
        for g in opt.param_groups:
            g["lr"] = lr
        classes = torch.randperm(10, generator=rng)[:N_CLASSES]
        pos, neg, alphas = [], [], []
        for c in classes.tolist():
            ix = by_class[c][torch.randint(len(by_class[c]), (N_POS,), generator=rng)]
            pos.append(images[ix])
            neg.append(images[torch.randint(len(images), (N_UNC,), generator=rng)])
            alphas.append(draw_alpha(rng))
        pos, neg = torch.stack(pos), torch.stack(neg)
        alpha_t = torch.tensor(alphas, dtype=torch.float32)
        w_neg = ((alpha_t - 1) * (N_GEN - 1) / N_UNC)[:, None].expand(N_CLASSES, N_UNC).contiguous()
        labels = classes.repeat_interleave(N_GEN)
        alpha_gen = alpha_t.repeat_interleave(N_GEN)
        z = torch.randn(N_CLASSES * N_GEN, 16, 8, 8, generator=rng)
        lap("data")
        if compiled is not None:
            loss, m_tau = compiled(z, labels, alpha_gen, pos, neg, w_neg)
            lap("forward+field (compiled)")
            opt.zero_grad()
            loss.backward()
            lap("backward")
        else:
            x = gen(z, labels, alpha_gen)
            lap("generate")
            gen_feats = encode(enc, x.view(N_CLASSES, N_GEN, *x.shape[1:]))
            lap("encode_gen")
            with torch.no_grad():
                pos_feats = encode(enc, pos)
                neg_feats = encode(enc, neg)
            lap("encode_real")
            loss, m_tau = field_loss(gen_feats, pos_feats, neg_feats, w_neg)
            opt.zero_grad()
            lap("field")
            # Two parts, as drift's [train] profile does: to the samples, then
            # through the generator (the same gradients as loss.backward()).
            gx, = torch.autograd.grad(loss, x)
            lap("backward_encoder")
            x.backward(gx)
            lap("backward_generator")
        loss_v = loss.item()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        opt.step()
        decay = min(0.995, (1 + t) / (10 + t))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p, 1 - decay)
        lap("optimizer")
        return loss_v, m_tau

    t0 = time.perf_counter()
    losses = []
    for t in range(1, a.warmup_steps + 1):
        losses.append(step(t, {})[0])
    warm_s = time.perf_counter() - t0
    per_step, phases = [], []
    c0 = time.process_time()
    for t in range(a.warmup_steps + 1, a.warmup_steps + a.steps + 1):
        times = {}
        s0 = time.perf_counter()
        loss_v, m_tau = step(t, times)
        per_step.append(time.perf_counter() - s0)
        phases.append(times)
        losses.append(loss_v)
    cpu = (time.process_time() - c0) / a.steps
    med = statistics.median(per_step)
    print(f"mode {a.mode}{' channels_last' if a.channels_last else ''}")
    print(f"threads {a.threads}")
    print(f"torch {torch.__version__}")
    print(f"data {data_name.replace(' ', '_')}")
    print(f"encoder_weights {weights.replace(' ', '_')}")
    print(f"steps_per_s {1 / med:.4f}")
    print(f"ms_per_step {med * 1000:.1f}")
    print(f"ms_per_step_min {min(per_step) * 1000:.1f}")
    print(f"cpu_s_per_step {cpu:.3f}")
    # Compile mode: the warm-up steps hold the compilation; what they took
    # beyond ordinary steps is the compile time.
    print(f"warmup_s {warm_s:.1f}")
    print(f"compile_s {max(0.0, warm_s - a.warmup_steps * med):.1f}")
    print(f"loss_first {losses[0]:.4f}")
    print(f"loss_last {losses[-1]:.4f}")
    print(f"m_tau_last {','.join(f'{v:.4g}' for v in m_tau.tolist())}")
    for name in phases[0]:
        print(f"phase_ms:{name.replace(' ', '_')} {statistics.median(p[name] for p in phases) * 1000:.1f}")
    if a.op_profile > 0:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for t in range(a.op_profile):
                step(a.warmup_steps + a.steps + 1 + t, {})
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)


if __name__ == "__main__":
    main()
