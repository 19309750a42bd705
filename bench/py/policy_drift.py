"""A one-step drifting policy in plain PyTorch: the reference for drift's own
policy training, and an answer to whether one network evaluation per action
chunk can match a many-step policy.

The generator is the MLP trunk of bench/py/policy_bc.py taking the normalised
observation window and a noise chunk, returning an action chunk in one call.
Each step draws B training windows (observation, expert chunk) and generates
G chunks per observation from G noises. How the drift problems are formed
from such a conditional batch (one expert chunk per observation) is
--formation:

  knn (default)  one problem per observation: positives are the expert chunks
                 of the k training windows whose normalised observations are
                 nearest (the window itself included; with --radius > 0 those
                 farther than the radius get weight 0), negatives the G
                 chunks generated for this observation.
  expert         one problem per observation: the observation's own expert
                 chunk is the only positive, its G generated chunks the
                 negatives.
  joint          one problem for the whole batch in the joint space
                 (w * normalised observation window, chunk), w = --obs-weight:
                 positives the B real pairs, generated the B*G pairs
                 (observation_i, generated chunk); the observation part is a
                 constant, so only the chunk part is trained.

The drift field is bench/py/drift_field.py (docs/method.md); the loss
regresses each generated chunk onto its drifted, frozen copy. Saved as a
TorchScript policy for drift-rollout: forward(obs [B, To, obs_dim], noise
[B, Tp, action_dim]).

The defaults (knn, k 32, B 32, G 32) are the first configuration. The tuned
one (docs/results/policy.md) is k 8 with many observations and few generated
chunks per step:

  .venv/bin/python bench/py/policy_drift.py DEMOS.h5 OUT.pt --cpu-seconds 30 --k 8 --batch 64 --gen 4
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
    """Indices [N, k] and distances [N, k] of each window's k nearest windows by observation (itself first)."""
    idx, dist = [], []
    for i in range(0, len(cond), block):
        d = torch.cdist(cond[i:i + block], cond)
        r = d.topk(k, dim=1, largest=False)
        idx.append(r.indices)
        dist.append(r.values)
    return torch.cat(idx), torch.cat(dist)


def main():
    ap = parser(__doc__, batch=32, batch_help="observations per step (B)")
    ap.add_argument("--formation", choices=["knn", "expert", "joint"], default="knn",
                    help="how the positives and negatives of a conditional batch are formed (see the module text)")
    ap.add_argument("--gen", type=int, default=32, help="generated chunks per observation (G)")
    ap.add_argument("--k", type=int, default=32, help="knn: positives per observation, the nearest windows' expert chunks")
    ap.add_argument("--radius", type=float, default=0.0,
                    help="knn: neighbours farther than this (normalised observation distance) get weight 0; "
                         "0 = no cut-off (the window itself is always kept)")
    ap.add_argument("--obs-weight", type=float, default=1.0,
                    help="joint: weight w of the normalised observation window in the joint (w*obs, chunk) space")
    ap.add_argument("--temperatures", default="0.02,0.05,0.2")
    a = ap.parse_args()
    obs, act = setup(a)
    temps = tuple(float(t) for t in a.temperatures.split(","))
    m = DriftPolicy(a.obs_horizon, obs.shape[2], a.pred_horizon, act.shape[2], a.width)
    fit_normalisation(m, obs, float(act.std()))
    target = (act / m.act_scale).flatten(1)          # [N, S]
    cond_all = ((obs - m.obs_mean) / m.obs_std).flatten(1)
    t0 = time.process_time()
    S = target.shape[1]
    B, G = a.batch, a.gen
    t_knn = 0.0
    if a.formation == "knn":
        nn_idx, nn_dist = nearest(cond_all, a.k)
        t_knn = time.process_time() - t0
        if a.radius > 0:
            nn_w = (nn_dist <= a.radius).float()
            nn_w[:, 0] = 1.0
            print(f"knn: mean positives within radius {a.radius}: {nn_w.sum(1).mean():.1f} of {a.k}")
        else:
            nn_w = None

    def generate(i):
        cond = cond_all[i].repeat_interleave(G, 0)                          # [B*G, .]
        return m.chunk(cond, torch.randn(B * G, S)).view(B, G, S)

    def note(mt):
        return lambda: " m_tau [" + ", ".join(f"{v:.2e}" for v in mt.tolist()) + "]"

    def loss_knn():
        i = torch.randint(0, len(obs), (B,))
        x = generate(i)
        pos = target[nn_idx[i]]                                              # [B, k, S]
        w_pos = None if nn_w is None else nn_w[i]
        goal, V, mt, scale, s = drift_field(x, pos, w_pos=w_pos, temperatures=temps)
        return ((x / s - goal.detach()) ** 2).mean(), note(mt)

    def loss_expert():
        i = torch.randint(0, len(obs), (B,))
        x = generate(i)
        goal, V, mt, scale, s = drift_field(x, target[i][:, None, :], temperatures=temps)
        return ((x / s - goal.detach()) ** 2).mean(), note(mt)

    def loss_joint():
        i = torch.randint(0, len(obs), (B,))
        x = generate(i)                                                      # [B, G, S]
        c = a.obs_weight * cond_all[i]                                       # [B, C], constant
        gen = torch.cat([c.repeat_interleave(G, 0), x.reshape(B * G, S)], 1)[None]   # [1, B*G, C+S]
        pos = torch.cat([c, target[i]], 1)[None]                             # [1, B, C+S]
        goal, V, mt, scale, s = drift_field(gen, pos, temperatures=temps)
        xa = x.reshape(1, B * G, S)
        return ((xa / s - goal[:, :, -S:].detach()) ** 2).mean(), note(mt)

    loss_fn = {"knn": loss_knn, "expert": loss_expert, "joint": loss_joint}[a.formation]
    step = train(m, a, loss_fn, t0, print_every=200, clip=2.0)
    save(m, a.out)
    print(f"trained {step} steps on {len(obs)} windows in {time.process_time() - t0:.1f} CPU s "
          f"({t_knn:.1f} s of it the neighbour search); formation {a.formation}; "
          f"1 network evaluation per action chunk; saved {a.out}")


if __name__ == "__main__":
    main()
