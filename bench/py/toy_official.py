"""The authors' public toy demo of "Generative Modeling via Drifting" (Deng et
al. 2026), re-implemented in plain PyTorch eager as the reference that
experiments/paper/toy_official.toml (drift, C++) is compared against by
bench/compare_toy_official.sh.

  data       checkerboard (8 cells of a 4x4 board on [-1, 1]^2, noise 0.05) or
             Swiss roll (t from 0.5 pi over 2 turns, outer radius 1, noise 0.03);
             fresh samples every step
  generator  MLP 32 -> 256 -> 256 -> 256 -> 2 with SiLU, PyTorch default init
  field      k = exp(-cdist / tau), tau = 0.05, self distances masked,
             A = k / sqrt(max(rowsum(k) colsum(k), 1e-12)),
             V = (Ap rowsum(An)) pos - (An rowsum(Ap)) gen
  training   Adam lr 1e-3, loss mse(gen, stopgrad(gen + V)), 2048 generated and
             2048 data samples per step, 2000 steps

Writes the final generated samples (fresh noise) and the timings to an HDF5 file:

  .venv/bin/python bench/py/toy_official.py --dataset checkerboard --out /tmp/cb.h5
"""
import argparse
import math
import os
import time

import torch

NOISE_DIM = 32
TAU = 0.05


# ---------------------------------------------------------------- data
def checkerboard(n, gen, noise=0.05):
    """Uniform on the 8 cells (i + j even) of a 4x4 board covering [-1, 1]^2."""
    parity = torch.randint(0, 2, (n,), generator=gen)
    col = 2 * torch.randint(0, 2, (n,), generator=gen) + parity
    row = 2 * torch.randint(0, 2, (n,), generator=gen) + parity
    off = torch.rand(n, 2, generator=gen)
    cell = torch.stack([col, row], dim=1).to(torch.float32)
    pts = (cell + off - 2.0) / 2.0
    return pts + noise * torch.randn(n, 2, generator=gen)


def swiss_roll(n, gen, noise=0.03):
    """Spiral t (cos t, sin t), t uniform on [0.5 pi, 4.5 pi], outer radius 1.

    The demo rescales each batch by its largest |coordinate|, which is about
    4.5 pi (the outer end of the spiral). We divide by exactly 4.5 pi instead,
    so that the distribution equals drift's dataset `swiss_roll` with scale = 1,
    start_turns = 0.25, turns = 2 (experiments/paper/toy_official.toml) and does not
    depend on the batch.
    """
    t = 0.5 * math.pi + 4.0 * math.pi * torch.rand(n, generator=gen)
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / (4.5 * math.pi)
    return pts + noise * torch.randn(n, 2, generator=gen)


DATASETS = {"checkerboard": checkerboard, "swiss_roll": swiss_roll}


# ---------------------------------------------------------------- model
def make_generator():
    return torch.nn.Sequential(
        torch.nn.Linear(NOISE_DIM, 256), torch.nn.SiLU(),
        torch.nn.Linear(256, 256), torch.nn.SiLU(),
        torch.nn.Linear(256, 256), torch.nn.SiLU(),
        torch.nn.Linear(256, 2),
    )


# ---------------------------------------------------------------- drift field
@torch.no_grad()
def drift_field(x, pos, tau=TAU):
    """The demo's field V for generated x [G, 2] and data pos [P, 2]."""
    g = x.shape[0]
    targets = torch.cat([x, pos], dim=0)                      # [G + P, 2]
    dist = torch.cdist(x, targets)                            # [G, G + P]
    idx = torch.arange(g)
    dist[idx, idx] = 1e6                                      # no self attraction
    k = torch.exp(-dist / tau)
    row = k.sum(dim=1, keepdim=True)                          # over targets   [G, 1]
    col = k.sum(dim=0, keepdim=True)                          # over generated [1, G + P]
    a = k / torch.sqrt(torch.clamp_min(row * col, 1e-12))
    a_neg, a_pos = a[:, :g], a[:, g:]
    w_pos = a_pos * a_neg.sum(dim=1, keepdim=True)
    w_neg = a_neg * a_pos.sum(dim=1, keepdim=True)
    return w_pos @ pos - w_neg @ x


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=2048,
                    help="generated samples and fresh data samples per step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-samples", type=int, default=2048)
    ap.add_argument("--out", required=True, help="HDF5 file for the final samples")
    a = ap.parse_args()

    import h5py  # only needed for the output; imported late so --help is quick

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)                                 # the generator's init
    rng = torch.Generator().manual_seed(a.seed + 1)           # noise and data
    sample = DATASETS[a.dataset]
    net = make_generator()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    last_t, last_step = t_wall, 0
    for step in range(1, a.steps + 1):
        x = net(torch.randn(a.batch, NOISE_DIM, generator=rng))
        pos = sample(a.batch, rng)
        v = drift_field(x.detach(), pos)
        loss = torch.nn.functional.mse_loss(x, (x + v).detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == a.steps:
            now = time.perf_counter()
            rate = (step - last_step) / max(now - last_t, 1e-9)
            eta = (a.steps - step) / max(rate, 1e-9)
            print(f"[{a.dataset}] step {step:5d}/{a.steps}  loss {loss.item():.3e}  "
                  f"{rate:7.2f} steps/s  ETA {eta:6.0f} s", flush=True)
            last_t, last_step = now, step
    wall = time.perf_counter() - t_wall
    cpu = time.process_time() - t_cpu

    with torch.no_grad():
        out = net(torch.randn(a.eval_samples, NOISE_DIM, generator=rng)).to(torch.float32)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with h5py.File(a.out, "w") as f:
        f.create_dataset("samples", data=out.numpy())
        f.attrs["dataset"] = a.dataset
        f.attrs["steps"] = a.steps
        f.attrs["batch"] = a.batch
        f.attrs["seed"] = a.seed
        f.attrs["threads"] = a.threads
        f.attrs["wall_s"] = wall          # training loop only
        f.attrs["cpu_s"] = cpu            # process CPU time of the training loop
        f.attrs["steps_per_s"] = a.steps / wall
        f.attrs["torch_version"] = str(torch.__version__)
    print(f"[{a.dataset}] done: {a.steps} steps in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"({a.steps / wall:.2f} steps/s) -> {a.out}", flush=True)


if __name__ == "__main__":
    main()
