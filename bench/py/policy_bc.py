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
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from policy_common import add_normalisation, fit_normalisation, mlp, parser, save, setup, train  # noqa: E402
from policy_common import windows  # noqa: E402,F401  (kept importable from here)


class MlpPolicy(torch.nn.Module):
    def __init__(self, To: int, obs_dim: int, Tp: int, action_dim: int, width: int):
        super().__init__()
        self.Tp, self.action_dim = Tp, action_dim
        self.net = mlp(To * obs_dim, width, Tp * action_dim)
        add_normalisation(self, obs_dim)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = ((obs - self.obs_mean) / self.obs_std).flatten(1)
        return self.net(x).view(obs.shape[0], self.Tp, self.action_dim) * self.act_scale


def main():
    a = parser(__doc__, batch=256).parse_args()
    obs, act = setup(a)
    m = MlpPolicy(a.obs_horizon, obs.shape[2], a.pred_horizon, act.shape[2], a.width)
    fit_normalisation(m, obs, float(act.abs().max()))

    def loss_fn():
        i = torch.randint(0, len(obs), (a.batch,))
        return ((m(obs[i], torch.empty(0)) - act[i]) ** 2).mean() / float(m.act_scale) ** 2, lambda: ""

    t0 = time.process_time()
    step = train(m, a, loss_fn, t0, print_every=500)
    save(m, a.out)
    print(f"trained {step} steps on {len(obs)} windows in {time.process_time() - t0:.1f} CPU s; saved {a.out}")


if __name__ == "__main__":
    main()
