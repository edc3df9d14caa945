#!/usr/bin/python3
"""tests/bench/mintnet_torch.py: the PyTorch peer of `make bench`.

A PyTorch (1.13, Debian's python3-torch) implementation of the MintNet model
of /work/shared/mintnet-spec.md sections 1-4 and 6, written the way the
published model computes it, so that timings show what users would otherwise
run:
  - masked 3x3 convolutions (masks of section 1 applied on every use), the
    sign rule on W2's centre-diagonal entries, tau = max(|t|, 1e-12);
  - the Jacobian diagonal through the published N x L x L x C x H x W
    broadcast (d2 = sum over g1 of w2[g2, g1, c] * d1[n, g1, c, p]), then
    log-det = sum log D; autograd differentiates all of it;
  - squeeze (space-to-depth 2), logit preprocessing with its log-det, the
    N(0, I) prior and bits/dim of section 6;
  - Adam with AMSGrad, lr 1e-3, betas (0.9, 0.999), eps 1e-4;
  - the published inverse: per block, x = z / tau, then a fixed number of
    iterations x += (z - f(x)) / (beta D(x)) (100 with beta from the
    checkpoint, 3.5 for MNIST), no stopping test.

Weights, the architecture and the data come from a safetensors checkpoint
written by bench_mintnet (tests/bench/bench_mintnet.c), read with json and
numpy only. Entries: the model parameters "flow.<i>.{w1,b1,w2,b2,w3,b3,t}",
"bench.eval_pixels" (U8 [B, C, H, W], the batch whose log-likelihood both
sides compare), "bench.train_pixels" (U8 [P, C, H, W], the training pool),
"bench.z" (F32, latents to sample from); metadata "bench.layers" (JSON list
of {"type": "block", "mask": "A", "latent": 16} / {"type": "squeeze"}),
"bench.input" ([C, H, W]), "bench.lambda", "bench.damping".

Commands (each prints one JSON object on stdout):
  check   --ckpt F --ours J       per-sample nll of the eval batch (u = 0.5)
                                  against ours (JSON from `bench_mintnet
                                  prepare`); exit status 1 unless they agree
                                  to relative 1e-4
  time    --ckpt F --what train,eval,sample,recon --batch B --reps R
                                  R runs each, in seconds; the inverse
                                  (--sample-reps runs) can be timed over
                                  --time-iters of its --inverse-iters
                                  iterations and scaled, with --full-check
                                  adding one full run for the errors
  memory  --ckpt F --steps K --batch B
                                  peak resident memory of a training run
Threads: --threads T (torch.set_num_threads). Run with /usr/bin/python3.
"""
import argparse
import json
import math
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

TAU_MIN = 1e-12

# ---- safetensors, with json and numpy ------------------------------------------------
ST_DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "U8": "u1", "I64": "<i8", "U64": "<u8"}


def load_safetensors(path):
    """Returns ({name: numpy array}, {metadata key: string}) of a safetensors file."""
    with open(path, "rb") as f:
        buf = f.read()
    n = int.from_bytes(buf[:8], "little")
    if n <= 0 or 8 + n > len(buf):
        raise ValueError("%s: bad safetensors header length %d" % (path, n))
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = np.dtype(ST_DTYPES[e["dtype"]])
        arr = np.frombuffer(buf, dtype=dt, count=(end - b) // dt.itemsize, offset=base + b)
        tensors[name] = arr.reshape(e["shape"]).copy()
    return tensors, meta


# ---- masks (spec section 1) -------------------------------------------------------------
def mask(kind, c, out_ch, in_ch):
    """The [out_ch, in_ch, 3, 3] mask of a weight made of C x C sub-blocks."""
    i = (np.arange(out_ch) % c)[:, None, None, None]
    j = (np.arange(in_ch) % c)[None, :, None, None]
    u = np.arange(3)[None, None, :, None]
    v = np.arange(3)[None, None, None, :]
    if kind == "A":
        diag = (u < 1) | ((u == 1) & (v <= 1))
        m = (j < i) | ((j == i) & diag)
    else:
        diag = (u > 1) | ((u == 1) & (v >= 1))
        m = (j > i) | ((j == i) & diag)
    return torch.from_numpy(m.astype(np.float32))


def centre_diag_mask(c, out_ch, in_ch):
    """1 at the centre tap of entries whose sub-block row and column agree."""
    m = np.zeros((out_ch, in_ch, 3, 3), np.float32)
    o = np.arange(out_ch)[:, None]
    i = np.arange(in_ch)[None, :]
    m[:, :, 1, 1] = (o % c == i % c)
    return torch.from_numpy(m)


def elu_derivative(h):
    """ELU'(h): 1 for h > 0, exp(h) otherwise (h clamped so exp cannot overflow)."""
    return torch.where(h > 0, torch.ones_like(h), torch.exp(torch.clamp(h, max=0.0)))


# ---- the block (sections 2 and 3) --------------------------------------------------------
class Block(torch.nn.Module):
    """One masked-convolution block on (N, C, H, W) with latent factor L."""

    def __init__(self, c, latent, h, w, kind):
        super().__init__()
        lc = latent * c
        self.c, self.l, self.kind = c, latent, kind
        self.w1 = torch.nn.Parameter(torch.zeros(lc, c, 3, 3))
        self.b1 = torch.nn.Parameter(torch.zeros(lc))
        self.w2 = torch.nn.Parameter(torch.zeros(lc, lc, 3, 3))
        self.b2 = torch.nn.Parameter(torch.zeros(lc))
        self.w3 = torch.nn.Parameter(torch.zeros(c, lc, 3, 3))
        self.b3 = torch.nn.Parameter(torch.zeros(c))
        self.t = torch.nn.Parameter(torch.ones(c, h, w))
        self.register_buffer("m1", mask(kind, c, lc, c))
        self.register_buffer("m2", mask(kind, c, lc, lc))
        self.register_buffer("m3", mask(kind, c, c, lc))
        self.register_buffer("cm2", centre_diag_mask(c, lc, lc))
        q = np.arange(lc)
        self.register_buffer("q", torch.from_numpy(q))
        self.register_buffer("qc", torch.from_numpy(q % c))

    def weights(self):
        """Masked weights with the sign rule, and the centre-diagonal terms:
        c1 [L, C] (w1[g, c]), c3 [L, C] (w3[g, c]), c2 [L(g2), L(g1), C]."""
        L, C = self.l, self.c
        W1 = self.w1 * self.m1
        W3 = self.w3 * self.m3
        c1 = W1[self.q, self.qc, 1, 1].view(L, C)
        c3 = W3[self.qc, self.q, 1, 1].view(L, C)
        s3 = torch.sign(c3).reshape(-1)            # output channel g2*C + c
        s1 = torch.sign(c1).reshape(-1)            # input channel g1*C + c
        sgn = (s3[:, None] * s1[None, :])[:, :, None, None]
        W2 = (self.w2 * (1 - self.cm2) + self.cm2 * sgn * torch.abs(self.w2)) * self.m2
        c2 = torch.diagonal(W2[:, :, 1, 1].view(L, C, L, C), dim1=1, dim2=3)   # [g2, g1, C]
        return W1, W2, W3, c1, c2, c3

    def tau(self):
        return torch.clamp(torch.abs(self.t), min=TAU_MIN)

    def forward(self, x):
        """y = f(x) and D, the Jacobian diagonal [N, C, H, W]."""
        N, C, H, W = x.shape
        L = self.l
        W1, W2, W3, c1, c2, c3 = self.weights()
        tau = self.tau()
        h1 = F.conv2d(x, W1, self.b1, padding=1)
        d1 = elu_derivative(h1).view(N, L, C, H, W) * c1[None, :, :, None, None]
        h2 = F.conv2d(F.elu(h1), W2, self.b2, padding=1)
        # the published N x L x L x C x H x W broadcast, summed over g1
        d2 = torch.sum(c2[None, :, :, :, None, None] * d1.unsqueeze(1), dim=2)
        d3 = elu_derivative(h2).view(N, L, C, H, W) * c3[None, :, :, None, None]
        y = F.conv2d(F.elu(h2), W3, self.b3, padding=1) + tau * x
        D = torch.sum(d2 * d3, dim=1) + tau
        return y, D

    def forward_logdet(self, x):
        y, D = self.forward(x)
        return y, torch.sum(torch.log(D), dim=(1, 2, 3))

    @torch.no_grad()
    def inverse(self, z, iters, beta):
        """The published fixed-iteration inverse (section 4)."""
        x = z / self.tau()
        for _ in range(iters):
            y, D = self.forward(x)
            x = x + (z - y) / (beta * D)
        return x


class Squeeze(torch.nn.Module):
    """Space-to-depth 2: out[n, dy*2C + dx*C + c, i, j] = in[n, c, 2i+dy, 2j+dx]."""

    def forward(self, x):
        N, C, H, W = x.shape
        x = x.view(N, C, H // 2, 2, W // 2, 2).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(N, 4 * C, H // 2, W // 2)

    def forward_logdet(self, x):
        return self.forward(x), None

    def inverse(self, z, iters=0, beta=0):
        N, C4, H, W = z.shape
        C = C4 // 4
        z = z.view(N, 2, 2, C, H, W).permute(0, 3, 4, 1, 5, 2)
        return z.reshape(N, C, 2 * H, 2 * W)


# ---- the model (section 6) -----------------------------------------------------------------
class MintNet(torch.nn.Module):
    def __init__(self, layers, input_shape, lam):
        super().__init__()
        c, h, w = input_shape
        mods = []
        for spec in layers:
            if spec["type"] == "squeeze":
                mods.append(Squeeze())
                c, h, w = 4 * c, h // 2, w // 2
            else:
                mods.append(Block(c, int(spec["latent"]), h, w, spec["mask"]))
        self.layers = torch.nn.ModuleList(mods)
        self.lam = lam
        self.dims = input_shape[0] * input_shape[1] * input_shape[2]

    def logit(self, x):
        """y = logit(lambda + (1 - 2 lambda) x) and its per-sample log-det."""
        p = self.lam + (1 - 2 * self.lam) * x
        y = torch.log(p) - torch.log1p(-p)
        ld = torch.sum(F.softplus(y) + F.softplus(-y), dim=(1, 2, 3)) + self.dims * math.log(1 - 2 * self.lam)
        return y, ld

    def flow(self, y):
        logdet = torch.zeros(y.shape[0], dtype=y.dtype)
        for layer in self.layers:
            y, ld = layer.forward_logdet(y)
            if ld is not None:
                logdet = logdet + ld
        return y, logdet

    def forward(self, x):
        """Per-sample nll (nats, logit space) and the logit log-det."""
        y, logit_ld = self.logit(x)
        z, logdet = self.flow(y)
        z = z.reshape(z.shape[0], -1)
        logp = torch.sum(-0.5 * z * z, dim=1) - 0.5 * math.log(2 * math.pi) * z.shape[1]
        return -(logp + logdet), logit_ld

    def bits_per_dim(self, nll, logit_ld):
        return (nll - logit_ld) / (self.dims * math.log(2)) + 8

    @torch.no_grad()
    def inverse(self, z, iters, beta, check=None):
        """x in [0, 1] from latents z; per block the fixed-iteration inverse.
        With a dict `check`, also stores check["residual"], the max over blocks
        of max |z_b - f_b(x_b)|, and check["seconds"], the time that took."""
        worst, spent = 0.0, 0.0
        for layer in reversed(self.layers):
            x = layer.inverse(z, iters, beta)
            if check is not None and isinstance(layer, Block):
                t0 = time.perf_counter()
                worst = max(worst, float(torch.max(torch.abs(layer.forward(x)[0] - z))))
                spent += time.perf_counter() - t0
            z = x
        if check is not None:
            check["residual"], check["seconds"] = worst, spent
        return (torch.sigmoid(z) - self.lam) / (1 - 2 * self.lam)


def build_model(ckpt, dtype=torch.float32):
    tensors, meta = load_safetensors(ckpt)
    layers = json.loads(meta["bench.layers"])
    inp = json.loads(meta["bench.input"])
    model = MintNet(layers, inp, float(meta.get("bench.lambda", "1e-6")))
    state = {}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Block):
            for p in ("w1", "b1", "w2", "b2", "w3", "b3", "t"):
                state["layers.%d.%s" % (i, p)] = torch.from_numpy(tensors["flow.%d.%s" % (i, p)])
    missing, _ = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.rsplit(".", 1)[1] in ("m1", "m2", "m3", "cm2", "q", "qc")]
    if missing:
        raise ValueError("checkpoint lacks " + ", ".join(missing))
    model.to(dtype)
    return model, tensors, meta


# ---- data -----------------------------------------------------------------------------------
def dequantize(pixels, noise):
    """x = (v + u) / 256, u ~ U(0, 1) (noise) or u = 0.5."""
    v = torch.from_numpy(pixels.astype(np.float32))
    u = torch.rand_like(v) if noise else 0.5
    return (v + u) / 256.0


class Batches:
    """Rotating batches of a pixel pool."""

    def __init__(self, pool, batch):
        self.pool, self.batch, self.pos = pool, batch, 0

    def next(self):
        idx = (self.pos + np.arange(self.batch)) % len(self.pool)
        self.pos = (self.pos + self.batch) % len(self.pool)
        return self.pool[idx]


# ---- measurements ------------------------------------------------------------------------------
def now():
    return time.perf_counter()


def make_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-4, amsgrad=True)


def train_step(model, opt, pixels):
    """One step: dequantise, logit, forward with log-det, backward, Adam."""
    x = dequantize(pixels, True)
    nll, _ = model(x)
    loss = nll.mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss)


def time_train(model, tensors, batch, reps, warmup):
    opt = make_optimizer(model)
    data = Batches(tensors["bench.train_pixels"], batch)
    t = []
    for r in range(warmup + reps):
        t0 = now()
        loss = train_step(model, opt, data.next())
        if r >= warmup:
            t.append(now() - t0)
    if not math.isfinite(loss):
        raise RuntimeError("training diverged (loss %r)" % loss)
    return t


def eval_pool(tensors, batch):
    """The eval batch repeated/cut to `batch` images."""
    ev = tensors["bench.eval_pixels"]
    return ev[np.arange(batch) % len(ev)]


@torch.no_grad()
def time_eval(model, tensors, batch, reps, warmup):
    px = eval_pool(tensors, batch)
    t = []
    for r in range(warmup + reps):
        t0 = now()
        model(dequantize(px, False))
        if r >= warmup:
            t.append(now() - t0)
    return t


def time_inverse(model, z, reps, iters, time_iters, beta):
    """Times the inverse with `time_iters` iterations per block, scaled to
    `iters`; returns (times, x of the last run, max block residual of the last
    run, its checking time excluded)."""
    t = []
    for r in range(reps):
        chk = {}
        t0 = now()
        x = model.inverse(z, time_iters, beta, chk)
        t.append((now() - t0 - chk["seconds"]) * iters / time_iters)
    return t, x, chk["residual"]


def cmd_time(args):
    model, tensors, meta = build_model(args.ckpt)
    beta = float(meta.get("bench.damping", "3.5"))
    what = args.what.split(",")
    out = {"threads": torch.get_num_threads(), "batch": args.batch}
    if "train" in what:
        out["train"] = time_train(model, tensors, args.batch, args.reps, args.warmup)
        model, tensors, meta = build_model(args.ckpt)   # later timings use the checkpoint's weights
    if "eval" in what:
        out["eval"] = time_eval(model, tensors, args.batch, args.reps, args.warmup)
    ti = args.time_iters or args.inverse_iters
    full = ti == args.inverse_iters or args.full_check
    if "sample" in what:
        z = torch.from_numpy(tensors["bench.z"])
        out["sample"], _, res = time_inverse(model, z, args.sample_reps, args.inverse_iters, ti, beta)
        if full and ti != args.inverse_iters:
            t, _, res = time_inverse(model, z, 1, args.inverse_iters, args.inverse_iters, beta)
            out["sample"] += t
        out["sample_iters_timed"], out["sample_iters"] = ti, args.inverse_iters
        if full:
            out["sample_residual"] = res
    if "recon" in what:
        x = dequantize(tensors["bench.eval_pixels"], False)
        with torch.no_grad():
            y, _ = model.logit(x)
            zz, _ = model.flow(y)
        ri = args.inverse_iters if full else ti
        out["recon"], xr, res = time_inverse(model, zz, 1, args.inverse_iters, ri, beta)
        out["recon_iters_timed"] = ri
        if full:
            out["recon_error"] = float(torch.max(torch.abs(xr - x)))
            out["recon_residual"] = res
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump(out, sys.stdout)
    print()
    return 0


def cmd_memory(args):
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model, tensors, _ = build_model(args.ckpt)
    opt = make_optimizer(model)
    data = Batches(tensors["bench.train_pixels"], args.batch)
    for _ in range(args.steps):
        train_step(model, opt, data.next())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump({"maxrss_kb": peak, "baseline_kb": base, "steps": args.steps, "batch": args.batch}, sys.stdout)
    print()
    return 0


def rel_diff(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))


def cmd_check(args):
    with open(args.ours) as f:
        ours = json.load(f)
    ours_nll = np.asarray(ours["nll"], np.float64)
    res = {}
    for name, dt in (("f32", torch.float32), ("f64", torch.float64)):
        model, tensors, _ = build_model(args.ckpt, dt)
        with torch.no_grad():
            nll, logit_ld = model(dequantize(tensors["bench.eval_pixels"], False).to(dt))
            bpd = model.bits_per_dim(nll, logit_ld)
        res[name] = {"nll": nll.double().numpy(), "bpd": float(bpd.double().mean())}
    out = {"peer_bpd": res["f32"]["bpd"], "peer_f64_bpd": res["f64"]["bpd"], "ours_bpd": ours["bpd"],
           "rel_nll_vs_peer_f32": rel_diff(ours_nll, res["f32"]["nll"]),
           "rel_nll_vs_peer_f64": rel_diff(ours_nll, res["f64"]["nll"]),
           "rel_bpd": abs(ours["bpd"] - res["f32"]["bpd"]) / abs(res["f32"]["bpd"]),
           "tolerance": args.tol}
    out["ok"] = bool(out["rel_nll_vs_peer_f32"] <= args.tol and out["rel_bpd"] <= args.tol
                     and len(ours_nll) == len(res["f32"]["nll"]))
    json.dump(out, sys.stdout)
    print()
    return 0 if out["ok"] else 1


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["check", "time", "memory"])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--ours", help="check: JSON from bench_mintnet prepare")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--what", default="train,eval")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--sample-reps", type=int, default=1)
    ap.add_argument("--inverse-iters", type=int, default=100)
    ap.add_argument("--time-iters", type=int, default=0,
                    help="time this many inverse iterations per block and scale to --inverse-iters")
    ap.add_argument("--full-check", action="store_true",
                    help="with --time-iters: one more run with all iterations, for the residuals and errors")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return {"check": cmd_check, "time": cmd_time, "memory": cmd_memory}[args.command](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
