#!/usr/bin/python3
"""tests/bench/check_torch_peer.py: sanity checks of the PyTorch peer
(mintnet_torch.py) against itself, in float64 on small shapes:
  - each block's Jacobian (torch.autograd.functional.jacobian, flattened
    NCHW order) is lower-triangular for type A and upper-triangular for type
    B, its diagonal equals the analytic D, and the analytic log-det (the
    published broadcast) equals slogdet of the dense Jacobian, with a positive
    sign (the sign rule), on random weights far from the initialisation;
  - the whole model's log-det (blocks and squeeze) equals slogdet too, and
    the logit log-det equals its own dense Jacobian's;
  - squeeze and its inverse are exact; the fixed-iteration inverse of a
    well-conditioned block reconstructs to 1e-9;
  - the safetensors reader reads back a file written here.
Runs in a few seconds; exit status 0 when every check passes. Run by
run_bench.sh before any timing, or by hand: /usr/bin/python3 check_torch_peer.py
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mintnet_torch as mt  # noqa: E402

torch.set_default_dtype(torch.float64)
FAILED = []


def check(name, ok, detail=""):
    print("%-60s %s %s" % (name, "ok" if ok else "FAILED", detail))
    if not ok:
        FAILED.append(name)


def randomize(block, scale, gen):
    """Weights far from the initialisation, t of both signs and sizes."""
    with torch.no_grad():
        for p in (block.w1, block.w2, block.w3):
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        for p in (block.b1, block.b2, block.b3):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        block.t.copy_((torch.rand(block.t.shape, generator=gen) + 0.5)
                      * torch.where(torch.rand(block.t.shape, generator=gen) < 0.3, -1.0, 1.0))


def dense_jacobian(fn, x):
    j = torch.autograd.functional.jacobian(fn, x)
    n = x.numel()
    return j.reshape(n, n)


def check_block(c, latent, h, w, kind, gen):
    blk = mt.Block(c, latent, h, w, kind).double()
    randomize(blk, 0.4, gen)
    x = torch.randn(1, c, h, w, generator=gen)
    tag = "block %s C=%d L=%d %dx%d" % (kind, c, latent, h, w)
    J = dense_jacobian(lambda v: blk(v)[0], x)
    off = torch.triu(J, 1) if kind == "A" else torch.tril(J, -1)
    check(tag + ": triangular", float(off.abs().max()) == 0.0, "max off %.3g" % float(off.abs().max()))
    y, D = blk(x)
    check(tag + ": diagonal = D", torch.allclose(torch.diagonal(J), D.reshape(-1), rtol=1e-10, atol=1e-12))
    sign, logabs = torch.linalg.slogdet(J)
    _, ld = blk.forward_logdet(x)
    err = abs(float(ld[0]) - float(logabs))
    check(tag + ": log-det = slogdet", sign > 0 and err < 1e-8 * max(1.0, abs(float(logabs))),
          "analytic %.10f slogdet %.10f" % (float(ld[0]), float(logabs)))


def check_model(gen):
    layers = [{"type": "block", "mask": "A", "latent": 2}, {"type": "block", "mask": "B", "latent": 2},
              {"type": "squeeze"}, {"type": "block", "mask": "A", "latent": 1},
              {"type": "block", "mask": "B", "latent": 1}]
    model = mt.MintNet(layers, [1, 4, 4], 1e-6).double()
    for layer in model.layers:
        if isinstance(layer, mt.Block):
            randomize(layer, 0.3, gen)
    y = torch.randn(1, 1, 4, 4, generator=gen)
    J = dense_jacobian(lambda v: model.flow(v)[0], y)
    sign, logabs = torch.linalg.slogdet(J)
    _, ld = model.flow(y)
    check("model flow log-det = slogdet", abs(float(ld[0]) - float(logabs)) < 1e-8,
          "analytic %.10f slogdet %.10f" % (float(ld[0]), float(logabs)))
    x = torch.rand(1, 1, 4, 4, generator=gen) * 0.98 + 0.01
    Jl = dense_jacobian(lambda v: model.logit(v)[0], x)
    _, ll = model.logit(x)
    check("logit log-det = slogdet", abs(float(ll[0]) - float(torch.linalg.slogdet(Jl)[1])) < 1e-8)


def check_squeeze(gen):
    sq = mt.Squeeze()
    x = torch.randn(2, 3, 6, 4, generator=gen)
    y = sq(x)
    ok = all(float(y[1, dy * 6 + dx * 3 + c, i, j]) == float(x[1, c, 2 * i + dy, 2 * j + dx])
             for dy in range(2) for dx in range(2) for c in range(3) for i in range(3) for j in range(2))
    check("squeeze index rule (spec section 5)", ok)
    check("squeeze inverse exact", torch.equal(sq.inverse(y), x))


def check_inverse(gen):
    blk = mt.Block(2, 3, 5, 5, "B").double()
    randomize(blk, 0.05, gen)
    with torch.no_grad():
        blk.t.abs_()
    x = torch.randn(3, 2, 5, 5, generator=gen)
    with torch.no_grad():
        z, _ = blk(x)
    xr = blk.inverse(z, 100, 1.0)
    err = float((xr - x).abs().max())
    check("fixed-iteration inverse round trip (beta 1, 100 it)", err < 1e-9, "max err %.3g" % err)


def check_safetensors():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    b = np.arange(5, dtype=np.uint8)
    hdr = {"a": {"dtype": "F32", "shape": [2, 3, 4], "data_offsets": [0, a.nbytes]},
           "b": {"dtype": "U8", "shape": [5], "data_offsets": [a.nbytes, a.nbytes + 5]},
           "__metadata__": {"k": "v"}}
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False) as f:
        f.write(len(h).to_bytes(8, "little") + h + a.tobytes() + b.tobytes())
        path = f.name
    try:
        t, meta = mt.load_safetensors(path)
    finally:
        os.unlink(path)
    check("safetensors reader", np.array_equal(t["a"], a) and np.array_equal(t["b"], b) and meta == {"k": "v"})


def main():
    gen = torch.Generator().manual_seed(5)
    for c, latent, h, w in ((1, 3, 4, 4), (2, 2, 3, 4), (3, 2, 3, 3), (4, 1, 2, 3)):
        for kind in "AB":
            check_block(c, latent, h, w, kind, gen)
    check_model(gen)
    check_squeeze(gen)
    check_inverse(gen)
    check_safetensors()
    print("%d check(s) failed" % len(FAILED) if FAILED else "all checks passed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
