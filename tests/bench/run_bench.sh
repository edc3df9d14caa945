#!/bin/bash
# tests/bench/run_bench.sh: one run of the MintNet benchmark against the
# PyTorch peer (issue 6). Builds nothing: `make bench-mintnet` builds
# bench_mintnet and the plugin first, then calls this script.
#
#   run_bench.sh --bin BUILD/tests/bench/bench_mintnet --out RESULTS.md
#                [--src SRCDIR] [--work DIR] [--data DIR] [--quick]
#
# 1. Checks the peer against itself (check_torch_peer.py: analytic log-det vs
#    slogdet of the dense Jacobian in float64, ...).
# 2. For the tiny, small and MNIST models (examples/*.yaml; spec section 7):
#    `bench_mintnet prepare` initialises (and briefly trains) the model and
#    writes a checkpoint with the weights, the data (Fashion-MNIST when
#    installed, else generated images) and latents; the peer loads it and
#    must compute the same per-sample log-likelihood (relative 1e-4), else
#    the run aborts before any timing.
# 3. Times both sides with the same weights, data and batch (32): training
#    step, forward with log-det, sampling through the inverse (ours to the
#    spec's tolerance, the peer's fixed 100 iterations), reconstruction
#    errors, peak resident memory of a training run, images/s at batch 8, 32,
#    128 with 1 and 2 threads, and our convolutions against the machine's
#    peak FMA throughput.
# 4. Writes the markdown table to --out, all raw numbers to --out's .json
#    sibling and a plot to its .svg sibling (tests/bench/bench_report.py).
# Needs /usr/bin/python3 with numpy and torch (Debian's python3-torch,
# installed here with apt-get when missing and running as root). Threads:
# OMP_NUM_THREADS for ours, torch.set_num_threads for the peer.
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=
OUT=bench-mintnet.md
WORK=
DATA=/usr/share/datasets/fashion-mnist
QUICK=0
ROUNDS=3
PY=/usr/bin/python3

while [ $# -gt 0 ]; do
    case "$1" in
    --src) SRC=$(cd "$2" && pwd); shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "run_bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$BIN" ] && [ -x "$BIN" ] || { echo "run_bench.sh: --bin must name the built bench_mintnet" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ -n "$WORK" ] || WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-mintnet.XXXXXX")
mkdir -p "$WORK"
rm -f "$WORK"/*.json "$WORK"/*.safetensors   # results of an earlier run
BENCH_DIR=$SRC/tests/bench
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf '[%4ds] %s\n' $(( $(date +%s) - START )) "$*" >&2; }
# Rounds after the first are skipped once the run has taken BUDGET seconds,
# so that a machine slowed down by other load still finishes `make bench` in
# under 10 minutes (the report says how many rounds ran).
BUDGET=${BENCH_BUDGET:-300}
more_rounds() { # round number
    [ "$1" = 1 ] && return 0
    if [ $(( $(date +%s) - START )) -ge "$BUDGET" ]; then
        log "time budget ($BUDGET s) spent: skipping round $1 and later"
        return 1
    fi
}

# ---- the peer's Python -------------------------------------------------------------------
if ! "$PY" -c 'import numpy, torch' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing python3-torch (Debian) for the peer"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-numpy >/dev/null
    else
        echo "run_bench.sh: $PY lacks numpy/torch; install Debian's python3-torch" >&2
        exit 1
    fi
fi
[ -d "$DATA" ] || DATA=

# ---- settings ----------------------------------------------------------------------------
# model name, spec, pretraining steps (ours, before the checkpoint), timed
# training reps, eval reps, peer inverse iterations actually timed (scaled to 100)
MODELS="tiny small mnist"
spec_of() { case $1 in tiny) echo "$SRC/examples/tiny.yaml" ;; small) echo "$SRC/examples/fashion_mintnet_small.yaml" ;;
            mnist) echo "$SRC/examples/mnist_mintnet.yaml" ;; esac; }
pretrain_of() { case $1 in tiny) echo 100 ;; small) echo 100 ;; mnist) echo 2 ;; esac; }
reps_of() { case $1 in tiny) echo 21 ;; small) echo 11 ;; mnist) echo 3 ;; esac; }
# The peer's inverse: tiny runs all 100 iterations; small times 20 of them
# (3 runs, scaled x5), then one full run gives the errors; MNIST times 10
# (one run, scaled x10) and reports no errors (a full run takes minutes).
peer_iters_of() { case $1 in tiny) echo 100 ;; small) echo 20 ;; mnist) echo 10 ;; esac; }
peer_full_of() { case $1 in small) echo --full-check ;; esac; }
sample_reps_of() { case $1 in mnist) echo 1 ;; *) echo 3 ;; esac; }
# Our inverse runs (after a warm-up run; MNIST: one run, no warm-up).
ours_inv_reps_of() { case $1 in tiny) echo 7 ;; small) echo 5 ;; mnist) echo 1 ;; esac; }
# MNIST: one sampling run each, no reconstruction (a full inverse takes minutes)
inv_what_of() { case $1 in mnist) echo sample ;; *) echo sample,recon ;; esac; }
inv_warmup_of() { case $1 in mnist) echo 0 ;; *) echo 1 ;; esac; }
if [ $QUICK = 1 ]; then
    ROUNDS=1
    reps_of() { case $1 in mnist) echo 1 ;; *) echo 3 ;; esac; }
    sample_reps_of() { echo 1; }
    ours_inv_reps_of() { echo 1; }
    peer_iters_of() { echo 10; }
    peer_full_of() { :; }
fi

ours() { # threads, args...
    local t=$1; shift
    OMP_NUM_THREADS=$t "$BIN" "$@"
}
peer() { # threads, args...
    local t=$1; shift
    OMP_NUM_THREADS=$t "$PY" "$BENCH_DIR/mintnet_torch.py" "$@" --threads "$t"
}

# ---- 1. the peer against itself ----------------------------------------------------------------
log "peer self-check (float64 Jacobians)"
"$PY" "$BENCH_DIR/check_torch_peer.py" > "$WORK/peer_selfcheck.txt" || {
    cat "$WORK/peer_selfcheck.txt" >&2; echo "run_bench.sh: the peer fails its self-check" >&2; exit 1; }

# ---- 2. same weights, same data, same log-likelihood ---------------------------------------------
for m in $MODELS; do
    log "$m: prepare (pretrain $(pretrain_of "$m") steps) and check the log-likelihood"
    ours 2 prepare --spec "$(spec_of "$m")" --out "$WORK/$m.safetensors" --pretrain "$(pretrain_of "$m")" \
        --batch 32 ${DATA:+--data "$DATA"} > "$WORK/$m.prepare.json"
    if ! peer 2 check --ckpt "$WORK/$m.safetensors" --ours "$WORK/$m.prepare.json" > "$WORK/$m.check.json"; then
        cat "$WORK/$m.check.json" >&2
        echo "run_bench.sh: $m: mintgrad and the peer disagree on the log-likelihood; no timings" >&2
        exit 1
    fi
done

# ---- 3. timings, batch 32, 2 threads ------------------------------------------------------------
# Training and evaluation run in ROUNDS rounds, ours and the peer's
# alternating, so that a burst of other load on the shared machine hits
# both; the report takes each side's median in its least disturbed round.
for round in $(seq 1 "$ROUNDS"); do
    more_rounds "$round" || break
    for m in $MODELS; do
        r=$(reps_of "$m")
        log "$m: round $round: ours: convolutions, eval, training ($r reps)"
        ours 2 time --spec "$(spec_of "$m")" --ckpt "$WORK/$m.safetensors" --what conv,eval,train --reps "$r" \
            > "$WORK/$m.ours.r$round.json"
        log "$m: round $round: peer: eval, training ($r reps)"
        peer 2 time --ckpt "$WORK/$m.safetensors" --what train,eval --reps "$r" > "$WORK/$m.peer.r$round.json"
    done
done
for m in $MODELS; do
    log "$m: ours: $(inv_what_of "$m") ($(ours_inv_reps_of "$m") reps)"
    ours 2 time --spec "$(spec_of "$m")" --ckpt "$WORK/$m.safetensors" --what "$(inv_what_of "$m")" \
        --reps "$(ours_inv_reps_of "$m")" --warmup "$(inv_warmup_of "$m")" > "$WORK/$m.ours_inv.json"
    log "$m: peer: $(inv_what_of "$m"), $(peer_iters_of "$m") of 100 iterations timed"
    peer 2 time --ckpt "$WORK/$m.safetensors" --what "$(inv_what_of "$m")" --sample-reps "$(sample_reps_of "$m")" \
        --inverse-iters 100 --time-iters "$(peer_iters_of "$m")" $(peer_full_of "$m") > "$WORK/$m.peer_inv.json"
done

# ---- peak resident memory of a training run ---------------------------------------------------------
for m in small mnist; do
    steps=$([ $m = mnist ] && echo 2 || echo 20)
    log "$m: peak memory of $steps training steps"
    ours 2 memory --spec "$(spec_of "$m")" --ckpt "$WORK/$m.safetensors" --steps $steps > "$WORK/$m.ours_mem.json"
    peer 2 memory --ckpt "$WORK/$m.safetensors" --steps $steps > "$WORK/$m.peer_mem.json"
done

# ---- scaling: small model, images/s ------------------------------------------------------------------
for round in $(seq 1 "$ROUNDS"); do
    more_rounds "$round" || break
    for t in 1 2; do
        for bsz in 8 32 128; do
            r=$([ $bsz = 128 ] && echo 3 || echo 7)
            [ $QUICK = 1 ] && r=3
            log "scaling: round $round: small, batch $bsz, $t thread(s)"
            ours $t time --spec "$(spec_of small)" --ckpt "$WORK/small.safetensors" --what train --batch $bsz \
                --reps $r > "$WORK/scale.ours.$t.$bsz.r$round.json"
            peer $t time --ckpt "$WORK/small.safetensors" --what train --batch $bsz --reps $r \
                > "$WORK/scale.peer.$t.$bsz.r$round.json"
        done
    done
done

# ---- 4. the report ----------------------------------------------------------------------------------
log "writing $OUT"
"$PY" "$BENCH_DIR/bench_report.py" --work "$WORK" --out "$OUT" --models "$MODELS" \
    --seconds $(( $(date +%s) - START )) \
    --note "load average (1, 5, 15 min) $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(nproc) CPUs"
log "done; raw results in $WORK"
cat "$OUT"
