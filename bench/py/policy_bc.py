"""Behaviour cloning by regression (MSE): the peer that collapses modes.

Trains an MLP from the last To observations to a chunk of Tp actions on a
demonstrations file (docs/guide/policy.md), for a CPU-seconds budget, and saves
a TorchScript policy with drift-rollout's interface:
forward(obs [B, To, obs_dim], noise [B, Tp, action_dim]) -> actions [B, Tp, action_dim]
(the noise is ignored). Windows follow Diffusion Policy: at an episode's start
the observations are padded with the first one, at its end the actions with the
last one.

  .venv/bin/python bench/py/policy_bc.py DEMOS.h5 OUT.pt --cpu-seconds 60 --threads 1
  build/bin/drift-rollout obstacle OUT.pt --episodes 100
"""
import argparse
import time

import h5py
import numpy as np
import torch


def windows(path, To, Tp):
    obs, act = [], []
    with h5py.File(path, "r") as f:
        names = sorted((k for k in f["data"] if k.startswith("demo_")), key=lambda k: int(k[5:]))
        for k in names:
            o = f["data"][k]["obs"][()].astype(np.float32)
            a = f["data"][k]["actions"][()].astype(np.float32)
            T = len(o)
            for t in range(T):
                idx_o = [max(0, t - To + 1 + i) for i in range(To)]
                idx_a = [min(T - 1, t + i) for i in range(Tp)]
                obs.append(o[idx_o])
                act.append(a[idx_a])
    return torch.tensor(np.stack(obs)), torch.tensor(np.stack(act))


class MlpPolicy(torch.nn.Module):
    def __init__(self, To: int, obs_dim: int, Tp: int, action_dim: int, width: int):
        super().__init__()
        self.Tp, self.action_dim = Tp, action_dim
        self.net = torch.nn.Sequential(
            torch.nn.Linear(To * obs_dim, width), torch.nn.Mish(),
            torch.nn.Linear(width, width), torch.nn.Mish(),
            torch.nn.Linear(width, width), torch.nn.Mish(),
            torch.nn.Linear(width, Tp * action_dim))
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("act_scale", torch.ones(1))

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = ((obs - self.obs_mean) / self.obs_std).flatten(1)
        return self.net(x).view(obs.shape[0], self.Tp, self.action_dim) * self.act_scale


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("demos")
    ap.add_argument("out")
    ap.add_argument("--obs-horizon", type=int, default=2)
    ap.add_argument("--pred-horizon", type=int, default=16)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--cpu-seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    obs, act = windows(a.demos, a.obs_horizon, a.pred_horizon)
    m = MlpPolicy(a.obs_horizon, obs.shape[2], a.pred_horizon, act.shape[2], a.width)
    flat = obs.reshape(-1, obs.shape[2])
    m.obs_mean.copy_(flat.mean(0))
    m.obs_std.copy_(flat.std(0).clamp_min(1e-3))
    m.act_scale.fill_(float(act.abs().max()))
    opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=1e-6)
    t0, step = time.process_time(), 0
    while time.process_time() - t0 < a.cpu_seconds:
        i = torch.randint(0, len(obs), (a.batch,))
        loss = ((m(obs[i], torch.empty(0)) - act[i]) ** 2).mean() / float(m.act_scale) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 500 == 0:
            print(f"step {step} loss {loss.item():.5f} cpu {time.process_time() - t0:.0f}/{a.cpu_seconds:.0f} s", flush=True)
    m.eval()
    torch.jit.script(m).save(a.out)
    print(f"trained {step} steps on {len(obs)} windows in {time.process_time() - t0:.1f} CPU s; saved {a.out}")


if __name__ == "__main__":
    main()
