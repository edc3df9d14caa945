#!/usr/bin/python3
"""tests/bench/bench_report.py: turns the JSON files of one run_bench.sh run
into the results table (markdown), a JSON summary and an SVG plot.

  bench_report.py --work DIR --out RESULTS.md [--models "tiny small mnist"]

Ratios are mintgrad / peer of medians (best runs in parentheses): below 1
means mintgrad is faster or smaller. Plain Python 3, no packages."""
import argparse
import json
import os
import statistics

TARGETS = {("train", "small"): 0.33, ("train", "mnist"): 0.12, ("sample", None): 0.1, ("memory", None): 0.5}


def read_json(path):
    """A JSON file's object, or None for a missing, empty or broken file
    (a measurement that did not finish)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load(work, name):
    """The JSON of `name` ("small.ours.json"); for a measurement taken in
    rounds ("small.ours.r1.json", "small.ours.r2.json", ...) their merge:
    lists (run times) concatenated, other fields from the first round, and
    "_rounds": {key: [each round's list]} for med_of."""
    path = os.path.join(work, name)
    if os.path.exists(path):
        return read_json(path)
    stem = name[:-len(".json")]
    merged, k = None, 1
    while os.path.exists(os.path.join(work, "%s.r%d.json" % (stem, k))):
        d = read_json(os.path.join(work, "%s.r%d.json" % (stem, k)))
        k += 1
        if d is None:
            continue
        if merged is None:
            merged = dict(d)
            merged["_rounds"] = {key: [v] for key, v in d.items() if isinstance(v, list)}
        else:
            for key, v in d.items():
                if isinstance(v, list) and isinstance(merged.get(key), list):
                    merged[key] = merged[key] + v
                    merged["_rounds"].setdefault(key, []).append(v)
                elif key not in merged:
                    merged[key] = v
                    if isinstance(v, list):
                        merged["_rounds"][key] = [v]
    return merged


def load_rounds(work, stem):
    """Each round's JSON of a measurement taken in rounds, in order."""
    out, k = [], 1
    while os.path.exists(os.path.join(work, "%s.r%d.json" % (stem, k))):
        d = read_json(os.path.join(work, "%s.r%d.json" % (stem, k)))
        if d is not None:
            out.append(d)
        k += 1
    return out


def med(v):
    return statistics.median(v) if v else float("nan")


def med_of(d, key):
    """Median of d[key]; for a measurement taken in rounds, the median of
    the least disturbed round (the lowest round median): a burst of other
    load on the shared machine then spoils a round, not the result."""
    rounds = d.get("_rounds", {}).get(key)
    if rounds:
        return min(med(r) for r in rounds)
    return med(d[key])


def ms(v):
    return "%.3g" % (v * 1e3) if v == v else "n/a"


def ratio(a, b):
    return a / b if b and a == a and b == b else float("nan")


def fmt_ratio(r, best=None):
    if r != r:
        return "n/a"
    s = "**%.3f**" % r
    return s + (" (%.3f)" % best if best is not None and best == best else "")


def target_of(kind, model):
    t = TARGETS.get((kind, model), TARGETS.get((kind, None)))
    return "≤ %.2f" % t if t else ""


def verdict(r, kind, model):
    t = TARGETS.get((kind, model), TARGETS.get((kind, None)))
    if not t or r != r:
        return ""
    return "met" if r <= t else "missed"


# ---- sections ------------------------------------------------------------------------------
def section_check(work, models):
    rows = ["| model | parameters | data | pretraining steps (ours) | bits/dim mintgrad | bits/dim peer (f32) "
            "| bits/dim peer (f64) | max relative nll difference (f32 / f64 peer) |",
            "|---|---|---|---|---|---|---|---|"]
    for m in models:
        p, c = load(work, m + ".prepare.json"), load(work, m + ".check.json")
        if not p or not c:
            continue
        rows.append("| %s | %s | %s | %d | %.6f | %.6f | %.6f | %.2g / %.2g |" % (
            m, format(p["params"], ","), p["data"], p["pretrain_steps"], c["ours_bpd"], c["peer_bpd"],
            c["peer_f64_bpd"], c["rel_nll_vs_peer_f32"], c["rel_nll_vs_peer_f64"]))
    return rows


def time_rows(work, models, summary):
    rows = ["| measurement | model | mintgrad ms, median (best) | peer ms, median (best) | ratio (of bests) "
            "| target | |", "|---|---|---|---|---|---|---|"]
    for kind, label in (("train", "training step"), ("eval", "forward with log-det")):
        for m in models:
            o, p = load(work, m + ".ours.json"), load(work, m + ".peer.json")
            if not o or not p or kind not in o or kind not in p:
                continue
            r, rb = ratio(med_of(o, kind), med_of(p, kind)), ratio(min(o[kind]), min(p[kind]))
            summary.setdefault(kind, {})[m] = {"ours": med_of(o, kind), "peer": med_of(p, kind), "ratio": r,
                                               "ours_best": min(o[kind]), "peer_best": min(p[kind])}
            rows.append("| %s, batch 32 | %s | %s (%s) | %s (%s) | %s | %s | %s |" % (
                label, m, ms(med_of(o, kind)), ms(min(o[kind])), ms(med_of(p, kind)), ms(min(p[kind])),
                fmt_ratio(r, rb), target_of(kind, m), verdict(r, kind, m)))
    for m in models:
        o, p = load(work, m + ".ours_inv.json"), load(work, m + ".peer_inv.json")
        if not o or not p or "sample" not in o:
            continue
        r, rb = ratio(med(o["sample"]), med(p["sample"])), ratio(min(o["sample"]), min(p["sample"]))
        summary.setdefault("sample", {})[m] = {"ours": med(o["sample"]), "peer": med(p["sample"]), "ratio": r}
        note = {100: "", 20: " ‡"}.get(p["sample_iters_timed"], " †")
        rows.append("| sampling 32 images (inverse) | %s | %s (%s) | %s (%s)%s | %s | %s | %s |" % (
            m, ms(med(o["sample"])), ms(min(o["sample"])), ms(med(p["sample"])), ms(min(p["sample"])), note,
            fmt_ratio(r, rb), target_of("sample", m), verdict(r, "sample", m)))
    return rows


def mem_rows(work, summary):
    rows = []
    for m in ("small", "mnist"):
        o, p = load(work, m + ".ours_mem.json"), load(work, m + ".peer_mem.json")
        if not o or not p:
            continue
        r = ratio(o["maxrss_kb"], p["maxrss_kb"])
        summary.setdefault("memory", {})[m] = {"ours_kb": o["maxrss_kb"], "peer_kb": p["maxrss_kb"], "ratio": r,
                                                 "peer_baseline_kb": p["baseline_kb"]}
        rows.append("| peak resident memory, %d training steps | %s | %.1f MB | %.1f MB (%.1f MB after `import torch`) "
                    "| %s | %s | %s |" % (o["steps"], m, o["maxrss_kb"] / 1024, p["maxrss_kb"] / 1024,
                                          p["baseline_kb"] / 1024, fmt_ratio(r), target_of("memory", m),
                                          verdict(r, "memory", m)))
    return rows


def section_inverse(work, models):
    rows = ["| model | mintgrad: iterations per block, mean and max over blocks (sampling / reconstruction) "
            "| mintgrad: max block residual "
            "| mintgrad: samples not converged | mintgrad: reconstruction error | peer: iterations "
            "| peer: max block residual | peer: reconstruction error |", "|---|---|---|---|---|---|---|---|"]
    for m in models:
        o, p = load(work, m + ".ours_inv.json"), load(work, m + ".peer_inv.json")
        if not o or not p or "sample" not in o:
            continue
        full = "sample_residual" in p
        g = lambda d, k, f: f % d[k] if k in d else "–"
        rows.append("| %s | %s, %s / %s, %s | %s / %s | %s / %s | %s | 100 (fixed) | %s / %s | %s |" % (
            m, g(o, "sample_mean_iterations", "%.1f"), g(o, "sample_max_iterations", "%g"),
            g(o, "recon_mean_iterations", "%.1f"), g(o, "recon_max_iterations", "%g"),
            g(o, "sample_max_residual", "%.2g"), g(o, "recon_max_residual", "%.2g"),
            g(o, "sample_not_converged", "%d"), g(o, "recon_not_converged", "%d"), g(o, "recon_error", "%.2g"),
            g(p, "sample_residual", "%.2g") if full else "n/a †", g(p, "recon_residual", "%.2g"),
            g(p, "recon_error", "%.2g") if full else "n/a †"))
    return rows


def section_scaling(work, summary):
    rows = ["| batch | mintgrad 1 thread | mintgrad 2 threads | speed-up | peer 1 thread | peer 2 threads "
            "| speed-up | ratio of times, 1 / 2 threads |", "|---|---|---|---|---|---|---|---|"]
    sc = summary.setdefault("scaling", {})
    for bsz in (8, 32, 128):
        v = {}
        for side in ("ours", "peer"):
            for t in (1, 2):
                d = load(work, "scale.%s.%d.%d.json" % (side, t, bsz))
                v[side, t] = bsz / med_of(d, "train") if d else float("nan")
        sc[bsz] = {"%s_%d" % k: x for k, x in v.items()}
        rows.append("| %d | %.0f | %.0f | %.2f× | %.0f | %.0f | %.2f× | %.3f / %.3f |" % (
            bsz, v["ours", 1], v["ours", 2], v["ours", 2] / v["ours", 1], v["peer", 1], v["peer", 2],
            v["peer", 2] / v["peer", 1], v["peer", 1] / v["ours", 1], v["peer", 2] / v["ours", 2]))
    return rows


def section_conv(work, models, summary):
    rows = ["| model | peak f32 FMA, GFLOP/s | dense conv FLOPs per training step | public conv kernel alone, dense: "
            "ms, GFLOP/s, % of peak | that time / training step time | dense conv FLOPs / step time, % of peak |",
            "|---|---|---|---|---|---|"]
    for m in models:
        # the round whose measured peak is highest was the least disturbed by other load
        rounds = [d for d in load_rounds(work, m + ".ours") if "peak_gflops" in d] or \
            [d for d in [load(work, m + ".ours.json")] if d and "peak_gflops" in d]
        if not rounds:
            continue
        o = max(rounds, key=lambda d: d["peak_gflops"])
        pk, fl, cs = o["peak_gflops"], o["conv_step_flops"], o["conv_step_seconds"]
        st = med_of(load(work, m + ".ours.json"), "train")
        g = fl / cs * 1e-9
        summary.setdefault("conv", {})[m] = {"peak_gflops": pk, "conv_gflops": g, "conv_share": cs / st,
                                             "step_fraction_of_peak": fl / st * 1e-9 / pk if pk else None}
        rows.append("| %s | %.0f | %.3g G | %.3g, %.0f, %.1f%% | %.0f%% | %.1f%% |" % (
            m, pk, fl * 1e-9, cs * 1e3, g, 100 * g / pk if pk else float("nan"), 100 * cs / st,
            100 * fl / st * 1e-9 / pk if pk else float("nan")))
    return rows


# ---- plot ------------------------------------------------------------------------------------
def svg_plot(summary, path):
    """Left: ratios (log scale) with targets; right: images/s against batch size."""
    W, H = 960, 380
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (W, H), '<rect width="100%" height="100%" fill="white"/>']
    bars = []
    for kind, label in (("train", "train"), ("eval", "eval"), ("sample", "sample"), ("memory", "memory")):
        for m, d in summary.get(kind, {}).items():
            t = TARGETS.get((kind, m), TARGETS.get((kind, None)))
            bars.append(("%s %s" % (label, m), d["ratio"], t))
    import math
    x0, x1, y0 = 130, 450, 40
    lo, hi = 1e-2, 2.0
    sx = lambda r: x0 + (x1 - x0) * (math.log10(max(r, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    out.append('<text x="%d" y="22" font-size="14">mintgrad / peer (log scale; shorter is better)</text>' % x0)
    for k in range(-2, 1):
        x = sx(10 ** k)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc"/>' % (x, y0, x, y0 + 20 * len(bars)))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (x, y0 + 20 * len(bars) + 14, 10 ** k))
    for i, (label, r, t) in enumerate(bars):
        y = y0 + 20 * i
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (x0 - 6, y + 13, label))
        if r == r:
            out.append('<rect x="%d" y="%d" width="%.1f" height="14" fill="%s"/>' % (
                x0, y + 2, sx(r) - x0, "#2a7" if (t is None or r <= t) else "#d54"))
            out.append('<text x="%.1f" y="%d">%.3f</text>' % (max(sx(r), sx(t) if t else 0) + 5, y + 13, r))
        if t:
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="2"/>' % (
                sx(t), y, sx(t), y + 18))
    out.append('<text x="%d" y="%d" fill="#555">black tick: target</text>' % (x0, y0 + 20 * len(bars) + 30))
    # right panel: images/s
    sc = summary.get("scaling", {})
    px0, px1, py0, py1 = 560, 930, 50, 330
    vals = [v for d in sc.values() for v in d.values() if v == v]
    if vals:
        top = 10 ** math.ceil(math.log10(max(vals)))
        bot = 10 ** math.floor(math.log10(min(vals)))
        sy = lambda v: py1 - (py1 - py0) * (math.log10(v) - math.log10(bot)) / (math.log10(top) - math.log10(bot))
        batches = sorted(sc)
        bx = lambda i: px0 + 30 + (px1 - px0 - 60) * i / max(1, len(batches) - 1)
        out.append('<text x="%d" y="22" font-size="14">training images/s, small model (log scale)</text>' % px0)
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (px0, py1, px1, py1))
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (px0, py0, px0, py1))
        k = math.log10(bot)
        while k <= math.log10(top) + 1e-9:
            out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (px0 - 4, sy(10 ** k) + 4, 10 ** k))
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>' % (px0, sy(10 ** k), px1, sy(10 ** k)))
            k += 1
        for i, bsz in enumerate(batches):
            out.append('<text x="%.1f" y="%d" text-anchor="middle">batch %s</text>' % (bx(i), py1 + 16, bsz))
        styles = (("ours_2", "#2a7", "", "mintgrad, 2 threads"), ("ours_1", "#2a7", "5,4", "mintgrad, 1 thread"),
                  ("peer_2", "#d54", "", "peer, 2 threads"), ("peer_1", "#d54", "5,4", "peer, 1 thread"))
        for j, (key, col, dash, label) in enumerate(styles):
            pts = [(bx(i), sy(sc[b][key])) for i, b in enumerate(batches) if sc[b].get(key, 0) == sc[b].get(key, 0)]
            out.append('<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="%s"/>' % (
                col, dash, " ".join("%.1f,%.1f" % p for p in pts)))
            ly = py0 + 14 * j
            out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>' % (
                px1 - 150, ly, px1 - 125, ly, col, dash))
            out.append('<text x="%d" y="%d">%s</text>' % (px1 - 120, ly + 4, label))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="tiny small mnist")
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    models = a.models.split()
    summary = {}
    md = ["# MintNet: mintgrad against the PyTorch peer", "",
          "One run of `make bench-mintnet` (tests/bench/run_bench.sh%s). Ratios are mintgrad / peer of the median "
          "(in parentheses: of the best run); below 1 means mintgrad is faster or smaller. Training, evaluation "
          "and scaling are measured in rounds, ours and the peer's alternating; their median is the one of the "
          "least disturbed round (lowest median) of each side. Same weights (the peer "
          "loads our checkpoint), same images, batch 32, 2 threads unless stated." % (
              ", %d s" % a.seconds if a.seconds else ""), "", "Machine: " + a.note if a.note else "", "",
          "## Same log-likelihood (checked before any timing; tolerance: relative 1e-4)", ""]
    md += section_check(a.work, models)
    nr, ns = len(load_rounds(a.work, "small.ours")), len(load_rounds(a.work, "scale.ours.1.8"))
    md += ["", "## Time and memory", "", "Rounds run (the time budget may cut them short): %d for training and "
           "evaluation, %d for scaling." % (nr, ns), ""]
    md += time_rows(a.work, models, summary) + mem_rows(a.work, summary)
    md += ["", "Sampling: mintgrad inverts to the spec's residual tolerance (1e-5, at most 200 iterations per block, "
           "adaptive damping from 3.5, float32); the peer runs the published fixed 100 iterations per block. ‡ the peer's runs "
           "time 20 of the 100 iterations per block, scaled ×5, plus one full run (which gives its errors). † the "
           "peer's time is 10 of its 100 iterations per block, timed once and scaled ×10 (its full inverse takes "
           "minutes); its errors are then not measured. Iterations cost the same whatever their number: the "
           "peer's inverse has no stopping test.", "",
           "## Inverse accuracy", ""]
    md += section_inverse(a.work, models)
    md += ["", "Block residual: max over blocks and samples of |z − f(x)| after the inverse. Reconstruction error: "
           "max |x − f⁻¹(f(x))| over the eval batch, pixel values in [0, 1]. –: not measured (the MNIST model's "
           "inverse is only sampled, once).", "",
           "## Scaling: training images/s, small model", ""]
    md += section_scaling(a.work, summary)
    md += ["", "## Convolutions against the machine's peak", ""]
    md += section_conv(a.work, models, summary)
    md += ["", "Public conv kernel alone, dense: the three convolutions of every block at batch 32 (forward, then "
           "the one-call backward for data, weights and bias) as full 3×3 convolutions through the public kernel "
           "API on plain NCHW buffers, what a straightforward implementation of the block runs; FLOPs count the "
           "full (unmasked) 3×3 kernels. The block itself does less: with C < 16 its thin convolutions (W1, W3) "
           "run on the plugin's own kernels, W2 keeps its activations in the blocked layout, and with C = 1 W2 is "
           "a 2×3 convolution (the mask zeroes a kernel row), so the last column is an effective rate and can "
           "exceed what the kernel reaches alone. Peak: all threads running independent AVX-512 FMA chains, best "
           "of 15, measured in the same process. Each round measures all of this; the row shows the round with "
           "the highest peak (the least disturbed one); the training step time is the median of Time and memory "
           "above.", ""]
    with open(a.out, "w") as f:
        f.write("\n".join(md))
    base = os.path.splitext(a.out)[0]
    with open(base + ".json", "w") as f:
        json.dump(summary, f, indent=1, default=str)
    svg_plot(summary, base + ".svg")


if __name__ == "__main__":
    main()
