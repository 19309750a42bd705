"""A diffusion policy (flow matching, many steps at inference): the multi-step
peer a one-step drifting policy is compared with.

Same data and windows as bench/py/policy_bc.py (the last To observations, a
chunk of Tp actions, Diffusion Policy's padding), same MLP trunk (3 hidden
layers, Mish) with the noisy chunk and the time as extra inputs. Trained by
conditional flow matching (rectified flow: x_t = (1 - t) noise + t actions, the
network predicts actions - noise, t uniform) for a CPU-seconds budget; sampled
with --nfe Euler steps from the noise drift-rollout passes. Saved as a
TorchScript policy: forward(obs [B, To, obs_dim], noise [B, Tp, action_dim]) ->
actions [B, Tp, action_dim].

  .venv/bin/python bench/py/policy_diffusion.py DEMOS.h5 OUT.pt --cpu-seconds 60 --nfe 100
  build/bin/drift-rollout obstacle OUT.pt --episodes 200
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from policy_common import add_normalisation, fit_normalisation, mlp, parser, save, setup, train  # noqa: E402


class FlowPolicy(torch.nn.Module):
    def __init__(self, To: int, obs_dim: int, Tp: int, action_dim: int, width: int, nfe: int):
        super().__init__()
        self.Tp, self.action_dim, self.nfe = Tp, action_dim, nfe
        d_in = To * obs_dim + Tp * action_dim + 16
        self.net = mlp(d_in, width, Tp * action_dim)
        add_normalisation(self, obs_dim)
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, 6.0, 8)))

    def velocity(self, cond: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # cond [B, To*obs_dim], x [B, Tp*action_dim] (scaled actions), t [B]
        e = t[:, None] * self.freqs[None, :]
        return self.net(torch.cat([cond, x, torch.sin(e), torch.cos(e)], dim=1))

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        B = obs.shape[0]
        cond = ((obs - self.obs_mean) / self.obs_std).flatten(1)
        x = noise.reshape(B, -1)
        dt = 1.0 / self.nfe
        for k in range(self.nfe):
            t = torch.full([B], k * dt, dtype=x.dtype, device=x.device)
            x = x + dt * self.velocity(cond, x, t)
        return x.view(B, self.Tp, self.action_dim) * self.act_scale


def main():
    ap = parser(__doc__, batch=256)
    ap.add_argument("--nfe", type=int, default=100)
    a = ap.parse_args()
    obs, act = setup(a)
    m = FlowPolicy(a.obs_horizon, obs.shape[2], a.pred_horizon, act.shape[2], a.width, a.nfe)
    # Actions scaled to unit standard deviation, the scale of the noise.
    fit_normalisation(m, obs, float(act.std()))
    target = (act / m.act_scale).flatten(1)
    cond_all = ((obs - m.obs_mean) / m.obs_std).flatten(1)

    def loss_fn():
        i = torch.randint(0, len(obs), (a.batch,))
        x1, z = target[i], torch.randn(a.batch, target.shape[1])
        t = torch.rand(a.batch)
        xt = (1 - t[:, None]) * z + t[:, None] * x1
        return ((m.velocity(cond_all[i], xt, t) - (x1 - z)) ** 2).mean(), lambda: ""

    t0 = time.process_time()
    step = train(m, a, loss_fn, t0, print_every=500)
    save(m, a.out)
    print(f"trained {step} steps on {len(obs)} windows in {time.process_time() - t0:.1f} CPU s; "
          f"{a.nfe} Euler steps per action chunk; saved {a.out}")


if __name__ == "__main__":
    main()
