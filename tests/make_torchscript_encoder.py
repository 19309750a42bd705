"""Writes a small TorchScript feature encoder and a check file for test_encoders.

    .venv/bin/python tests/make_torchscript_encoder.py OUT_DIR

OUT_DIR/encoder.pt: a scripted module whose forward([N, 1, 16, 16]) returns a
dict {"c1": [N, 4, 8, 8], "c2": [N, 8, 4, 4]}; OUT_DIR/encoder_tuple.pt: the
same maps as a tuple; OUT_DIR/check.h5: an input x [3, 1, 16, 16] and the
maps Python computed for it (c1, c2), to compare with the C++ encoder.
"""
import sys

import h5py
import torch


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.norm1 = torch.nn.GroupNorm(2, 4)
        self.conv2 = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor):
        c1 = torch.relu(self.norm1(self.conv1(x)))
        c2 = torch.tanh(self.conv2(c1))
        return {"c1": c1, "c2": c2}


class TupleEncoder(torch.nn.Module):
    def __init__(self, inner: Encoder):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor):
        d = self.inner(x)
        return d["c1"], d["c2"]


def main(out_dir: str) -> None:
    torch.manual_seed(0)
    enc = Encoder().eval()
    torch.jit.script(enc).save(f"{out_dir}/encoder.pt")
    torch.jit.script(TupleEncoder(enc)).save(f"{out_dir}/encoder_tuple.pt")
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        maps = enc(x)
    with h5py.File(f"{out_dir}/check.h5", "w") as f:
        f["x"] = x.numpy()
        for k, v in maps.items():
            f[k] = v.numpy()


if __name__ == "__main__":
    main(sys.argv[1])
