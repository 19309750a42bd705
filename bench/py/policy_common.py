"""What the three policy peers share (policy_bc.py, policy_diffusion.py,
policy_drift.py): the demonstration windows, the MLP trunk, the normalisation
buffers, the command line, and the CPU-budgeted training loop. Every policy is
saved as TorchScript with drift-rollout's interface,
forward(obs [B, To, obs_dim], noise [B, Tp, action_dim]) -> actions [B, Tp, action_dim]."""
import argparse
import time

import h5py
import numpy as np
import torch


def windows(path, To, Tp):
    """(obs [N, To, obs_dim], actions [N, Tp, action_dim]) for every step of every
    episode, padded as Diffusion Policy does: the first observation repeated at an
    episode's start, the last action at its end."""
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


def mlp(d_in, width, d_out):
    """The trunk of every peer: 3 hidden layers of `width`, Mish."""
    return torch.nn.Sequential(
        torch.nn.Linear(d_in, width), torch.nn.Mish(),
        torch.nn.Linear(width, width), torch.nn.Mish(),
        torch.nn.Linear(width, width), torch.nn.Mish(),
        torch.nn.Linear(width, d_out))


def add_normalisation(m, obs_dim):
    """Buffers obs_mean, obs_std (observations) and act_scale (actions), saved with the policy."""
    m.register_buffer("obs_mean", torch.zeros(obs_dim))
    m.register_buffer("obs_std", torch.ones(obs_dim))
    m.register_buffer("act_scale", torch.ones(1))


def fit_normalisation(m, obs, act_scale):
    flat = obs.reshape(-1, obs.shape[2])
    m.obs_mean.copy_(flat.mean(0))
    m.obs_std.copy_(flat.std(0).clamp_min(1e-3))
    m.act_scale.fill_(act_scale)


def parser(doc, batch, batch_help=None):
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("demos")
    ap.add_argument("out")
    ap.add_argument("--obs-horizon", type=int, default=2)
    ap.add_argument("--pred-horizon", type=int, default=16)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--batch", type=int, default=batch, help=batch_help)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--cpu-seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def setup(a):
    """Threads and seed from the command line, then the demonstration windows."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    return windows(a.demos, a.obs_horizon, a.pred_horizon)


def train(m, a, loss_fn, t0, print_every, clip=None):
    """AdamW steps of loss_fn() -> (loss, note) until `a.cpu_seconds` of process
    CPU time since t0 are spent; returns the number of steps."""
    opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=1e-6)
    step = 0
    while time.process_time() - t0 < a.cpu_seconds:
        loss, note = loss_fn()
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
        opt.step()
        step += 1
        if step % print_every == 0:
            print(f"step {step} loss {loss.item():.5f}{note()} cpu {time.process_time() - t0:.0f}/{a.cpu_seconds:.0f} s",
                  flush=True)
    return step


def save(m, path):
    m.eval()
    torch.jit.script(m).save(path)
