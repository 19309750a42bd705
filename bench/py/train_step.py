"""The toy training step of bench/bench_train_step.cpp written in Python with
PyTorch eager: MLP 3x256 generator (noise 32), 256 generated, 256 positives
from the bimodal toy, 3 temperatures, AdamW(0.9, 0.95), grad clip 2, EMA.
Prints steps per second."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from drift_field import drift_field  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    layers, d = [], 32
    for _ in range(3):
        layers += [torch.nn.Linear(d, 256), torch.nn.SiLU()]
        d = 256
    net = torch.nn.Sequential(*layers, torch.nn.Linear(256, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01)
    ema = [p.detach().clone() for p in net.parameters()]
    centers = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])

    def step():
        x = net(torch.randn(256, 32)).view(1, 256, 2)
        pos = (centers[torch.randint(0, 2, (256,))] + 0.5 * torch.randn(256, 2)).view(1, 256, 2)
        with torch.no_grad():
            goal, V, m, scale, s = drift_field(x, pos)
        loss = ((x / s - goal) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 2.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, net.parameters()):
                e.lerp_(p, 0.001)
        return m

    for _ in range(a.warmup_steps):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        m = step()
    m.sum().item()
    dt = time.perf_counter() - t0
    print(f"python_eager_steps_per_s {a.steps / dt:.2f}")

    # The generator part alone (MLP forward/backward + AdamW), which bounds what
    # any faster drift field can gain.
    def mlp_only():
        x = net(torch.randn(256, 32))
        loss = x.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(a.warmup_steps):
        mlp_only()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        mlp_only()
    print(f"python_mlp_adamw_ms {(time.perf_counter() - t0) / a.steps * 1e3:.3f}")


if __name__ == "__main__":
    main()
