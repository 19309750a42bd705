"""The default drift field (docs/method.md §2) in PyTorch eager: the peer our
C++ benchmarks are compared against. Same math as plugins/kernels/laplace."""
import math

import torch


def drift_field(gen, pos, neg=None, w_gen=None, w_pos=None, w_neg=None, temperatures=(0.02, 0.05, 0.2),
                exact_distances=False):
    """gen [B,Cg,S], pos [B,Cp,S], neg [B,Cn,S] -> (goal, V, m_tau[n], scale, s).

    exact_distances: distances from explicit differences instead of torch.cdist
    (whose matrix-product form loses digits for nearly equal points); the golden
    cases (bench/py/make_golden.py) use it, the speed comparisons do not."""
    B, Cg, S = gen.shape
    old = gen.detach()
    if neg is None:
        neg = old.new_zeros(B, 0, S)
    w_gen = torch.ones(B, Cg, dtype=old.dtype, device=old.device) if w_gen is None else w_gen
    w_pos = torch.ones(B, pos.shape[1], dtype=old.dtype, device=old.device) if w_pos is None else w_pos
    w_neg = torch.ones(B, neg.shape[1], dtype=old.dtype, device=old.device) if w_neg is None else w_neg
    Y = torch.cat([old, neg, pos], 1)
    w = torch.cat([w_gen, w_neg, w_pos], 1)
    n_neg = Cg + neg.shape[1]
    if exact_distances:
        d2 = ((old[:, :, None, :] - Y[:, None, :, :]) ** 2).sum(-1)
    else:
        d = torch.cdist(old, Y).clamp_min(0)
        d2 = d * d
    d = torch.sqrt(torch.clamp(d2, min=1e-8))
    scale = (d * w[:, None, :]).mean() / w.mean()
    s = torch.clamp(scale / math.sqrt(S), min=1e-3)
    dn = d / torch.clamp(scale, min=1e-3)
    eye = torch.zeros_like(dn)
    eye[:, :, :Cg] = torch.eye(Cg, dtype=dn.dtype, device=dn.device) * 100.0
    dn = dn + eye
    V = torch.zeros_like(old)
    m = []
    Ys = Y / s
    olds = old / s
    for tau in temperatures:
        logits = -dn / tau
        A = torch.sqrt(torch.clamp(torch.softmax(logits, 2) * torch.softmax(logits, 1), min=1e-6))
        A = A * w[:, None, :]
        An, Ap = A[:, :, :n_neg], A[:, :, n_neg:]
        Kn = -An * Ap.sum(2, keepdim=True)
        Kp = Ap * An.sum(2, keepdim=True)
        K = torch.cat([Kn, Kp], 2)
        F = K @ Ys - K.sum(2, keepdim=True) * olds
        mt = (F * F).mean()
        m.append(mt)
        V = V + F / torch.sqrt(torch.clamp(mt, min=1e-8))
    goal = olds + V
    return goal, V, torch.stack(m), scale, s
