"""A one-step drifting policy in plain PyTorch: the reference for drift's own
policy training, and a first answer to whether one network evaluation per
action chunk can match a many-step policy.

The generator is the MLP trunk of bench/py/policy_bc.py taking the normalised
observation window and a noise chunk, returning an action chunk in one call.
Conditional drifting with one expert chunk per observation: for each of B
observations of a step, G chunks are generated from G noises; the positives
are the expert chunks of the k training windows whose observations are
nearest (the observation itself included), so that the positives of an
observation where the demonstrations split carry both modes; the generated
chunks of the same observation are the negatives. The drift field is
bench/py/drift_field.py (docs/method.md); the loss regresses each generated
chunk onto its drifted, frozen copy. Saved as a TorchScript policy for
drift-rollout: forward(obs [B, To, obs_dim], noise [B, Tp, action_dim]).

  .venv/bin/python bench/py/policy_drift.py DEMOS.h5 OUT.pt --cpu-seconds 30
  build/bin/drift-rollout obstacle OUT.pt --episodes 200
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from drift_field import drift_field  # noqa: E402
from policy_common import add_normalisation, fit_normalisation, mlp, parser, save, setup, train  # noqa: E402


class DriftPolicy(torch.nn.Module):
    def __init__(self, To: int, obs_dim: int, Tp: int, action_dim: int, width: int):
        super().__init__()
        self.Tp, self.action_dim = Tp, action_dim
        self.net = mlp(To * obs_dim + Tp * action_dim, width, Tp * action_dim)
        add_normalisation(self, obs_dim)

    def chunk(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        # cond [n, To*obs_dim] normalised, noise [n, Tp*action_dim] -> scaled actions [n, Tp*action_dim]
        return self.net(torch.cat([cond, noise], dim=1))

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        B = obs.shape[0]
        cond = ((obs - self.obs_mean) / self.obs_std).flatten(1)
        return self.chunk(cond, noise.reshape(B, -1)).view(B, self.Tp, self.action_dim) * self.act_scale


def nearest(cond, k, block=2048):
    """Indices [N, k] of each window's k nearest windows by observation (itself first)."""
    out = []
    for i in range(0, len(cond), block):
        d = torch.cdist(cond[i:i + block], cond)
        out.append(d.topk(k, dim=1, largest=False).indices)
    return torch.cat(out)


def main():
    ap = parser(__doc__, batch=32, batch_help="observations per step (B)")
    ap.add_argument("--gen", type=int, default=32, help="generated chunks per observation (G)")
    ap.add_argument("--k", type=int, default=32, help="positives per observation: nearest windows' expert chunks")
    ap.add_argument("--temperatures", default="0.02,0.05,0.2")
    a = ap.parse_args()
    obs, act = setup(a)
    temps = tuple(float(t) for t in a.temperatures.split(","))
    m = DriftPolicy(a.obs_horizon, obs.shape[2], a.pred_horizon, act.shape[2], a.width)
    fit_normalisation(m, obs, float(act.std()))
    target = (act / m.act_scale).flatten(1)          # [N, S]
    cond_all = ((obs - m.obs_mean) / m.obs_std).flatten(1)
    t0 = time.process_time()
    nn_idx = nearest(cond_all, a.k)
    t_knn = time.process_time() - t0
    S = target.shape[1]

    def loss_fn():
        i = torch.randint(0, len(obs), (a.batch,))
        cond = cond_all[i].repeat_interleave(a.gen, 0)                      # [B*G, .]
        x = m.chunk(cond, torch.randn(a.batch * a.gen, S)).view(a.batch, a.gen, S)
        pos = target[nn_idx[i]]                                              # [B, k, S]
        goal, V, mt, scale, s = drift_field(x, pos, temperatures=temps)
        return ((x / s - goal.detach()) ** 2).mean(), lambda: f" m_tau {[round(v, 4) for v in mt.tolist()]}"

    step = train(m, a, loss_fn, t0, print_every=200, clip=2.0)
    save(m, a.out)
    print(f"trained {step} steps on {len(obs)} windows in {time.process_time() - t0:.1f} CPU s "
          f"({t_knn:.1f} s of it the neighbour search); 1 network evaluation per action chunk; saved {a.out}")


if __name__ == "__main__":
    main()
