#!/usr/bin/python3
"""tests/bench/perf_summary.py: groups a `perf report` of bench_mintnet's
training step into the parts of the step (docs/performance.md).

  OMP_NUM_THREADS=1 perf record -F 999 -g -o perf.data \\
      BUILD/tests/bench/bench_mintnet time --spec SPEC --ckpt CKPT --what train --reps 40
  perf report -i perf.data --no-children -n --sort dso,sym --stdio -g none | perf_summary.py

Prints one markdown row per category (share of all samples) and the top
symbols. oneDNN's generated code shows as "[JIT] tid N": convolutions and
its JIT reorders (layout conversions) both land there. To tell them apart,
feed it oneDNN's own timings instead:

  ONEDNN_VERBOSE=1 OMP_NUM_THREADS=1 BUILD/tests/bench/bench_mintnet time ... \
      --what train --reps 10 --warmup 0 | perf_summary.py --dnnl-steps 10

which sums the "onednn_verbose,exec" lines by primitive kind, pass and
implementation, per training step."""
import re
import sys

# (category, dso pattern, symbol pattern), first match wins
RULES = [
    ("oneDNN generated kernels (convolutions, JIT reorders)", r"^\[JIT\]", r""),
    ("oneDNN library (reference reorders, primitive plumbing)", r"libdnnl", r""),
    ("log-det backward: per-channel L×L terms (ld_backward)", r"mintnet", r"^ld_|ld_backward|ld_run|ld_tile"),
    ("Jacobian diagonal forward (diag tiles, L×L GEMM)", r"mintnet", r"diag|small_gemm"),
    ("plugin's own convolutions of the thin W1 / W3 (forward, backward-data, input padding)", r"mintnet",
     r"conv_block|conv_taps|pad_input|mn_conv3"),
    ("plugin's weight and bias gradients of W1 / W3 (corr_plane, channel sums)", r"mintnet",
     r"corr_plane|wgrad|channel_sum"),
    ("ELU and gradient passes that change layout for W2 (mintnet_blocked.c)", r"mintnet", r"blocked"),
    ("ELU / ELU' (plugin loops + libm exp)", r"mintnet|libm", r"elu|expm1|^__exp|expf"),
    ("other plugin elementwise (combine, τ and x gradients, masks, ...)", r"mintnet", r""),
    ("libm log / log1p (log-det, logit)", r"libm", r"log"),
    ("engine: Adam", r"libmintgrad", r"adam"),
    ("engine: other ops and bookkeeping (logit, prior, sums, ...)", r"libmintgrad", r""),
    ("kernel: page faults, allocation, scheduling", r"kernel", r""),
    ("OpenMP runtime (barriers, spinning)", r"libgomp", r""),
    ("libc (memset, memcpy, malloc)", r"libc", r""),
]


def dnnl_summary(lines, steps):
    """Per-step time of oneDNN primitives from ONEDNN_VERBOSE=1 output."""
    agg = {}
    for line in lines:
        if not line.startswith("onednn_verbose,exec"):
            continue
        f = line.strip().split(",")
        kind, impl, prop = f[3], f[4], f[5]
        key = (kind, prop if kind != "reorder" else "(layout conversion)", impl)
        n, t = agg.get(key, (0, 0.0))
        agg[key] = (n + 1, t + float(f[-1]))
    total = sum(t for _, t in agg.values()) or 1
    print("| oneDNN primitive | pass | implementation | calls per step | ms per step | share of oneDNN time |")
    print("|---|---|---|---|---|---|")
    for (kind, prop, impl), (n, t) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print("| %s | %s | %s | %.0f | %.2f | %.1f%% |" % (kind, prop, impl, n / steps, t / steps, 100 * t / total))
    print("| total | | | | %.2f | |" % (total / steps))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--dnnl-steps":
        dnnl_summary(sys.stdin, int(sys.argv[2]))
        return
    rows = []
    for line in sys.stdin:
        # "  25.26%  1062  mintnet.so  [.] ld_backward._omp_fn.0": samples counted exactly
        m = re.match(r"\s*[\d.]+%\s+(\d+)\s+(\[JIT\] tid \d+|\S+)\s+\[[.k]\]\s+(.*?)\s*(?:-\s+-\s*)?$", line)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(3).strip()))
    total = sum(r[0] for r in rows) or 1
    rows = [(100.0 * n / total, dso, sym) for n, dso, sym in rows]
    cats = {name: 0.0 for name, _, _ in RULES}
    cats["other"] = 0.0
    for pct, dso, sym in rows:
        for name, dp, sp in RULES:
            if re.search(dp, dso) and (not sp or re.search(sp, sym)):
                cats[name] += pct
                break
        else:
            cats["other"] += pct
    print("| part of the step | share of samples |")
    print("|---|---|")
    for name, pct in sorted(cats.items(), key=lambda kv: -kv[1]):
        if pct >= 0.05:
            print("| %s | %.1f%% |" % (name, pct))
    print()
    print("Top symbols outside oneDNN's generated code:")
    for pct, dso, sym in sorted((r for r in rows if not r[1].startswith("[JIT]")), reverse=True)[:12]:
        print("  %5.1f%%  %-22s %s" % (pct, dso, sym))


if __name__ == "__main__":
    main()
