"""Hand-written TorchScript policies for tests/cli/rollout.sh: straight up (into
the obstacle's disc), round the disc on the left (the expert's left-mode
waypoints, planned open loop over the chunk), and one that returns the wrong
shape. Usage: python make_policies.py OUT_DIR"""
import sys, torch

class Up(torch.nn.Module):
    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a = torch.zeros_like(noise)
        a[..., 1] = 0.05
        return a

class LeftAround(torch.nn.Module):
    """Flies round the disc on the left: the expert's left-mode waypoints, planned open loop over the chunk."""
    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = float(obs[0, -1, 0]); y = float(obs[0, -1, 1])
        out = torch.zeros_like(noise)
        for t in range(noise.shape[1]):
            if y < -0.251:
                tx, ty = -0.45, -0.25
            elif y < 0.25:
                tx, ty = -0.45, 0.3
            else:
                tx, ty = 0.0, 0.8
            dx, dy = tx - x, ty - y
            n = (dx * dx + dy * dy) ** 0.5
            if n > 0.05:
                dx, dy = dx * 0.05 / n, dy * 0.05 / n
            out[0, t, 0] = dx; out[0, t, 1] = dy
            x += dx; y += dy
        return out

class WrongShape(torch.nn.Module):
    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return noise[:, :, :1]

d = sys.argv[1]
for name, m in [("up", Up()), ("left", LeftAround()), ("wrong_shape", WrongShape())]:
    torch.jit.script(m).save(f"{d}/{name}.pt")
