# tests/bench/local.mk: benchmarks. `make bench` builds and runs them;
# plain `make` and `make check` neither build nor run them, since timings on
# a shared two-core machine are not tests.
#
# Kernel benchmarks (BENCH_KERNELS) run with OMP_NUM_THREADS=2, then 1.
# bench_conv times the conv2d kernel (and the private oneDNN layer of
# ops/dnnl.h on its own) against the machine's measured FMA peak.
BENCH_KERNELS = tests/bench/bench_conv
EXTRA_PROGRAMS = $(BENCH_KERNELS)
tests_bench_bench_conv_SOURCES = tests/bench/bench_conv.c
tests_bench_bench_conv_CFLAGS = $(AM_CFLAGS)
tests_bench_bench_conv_LDADD = libmintgrad.la -lm
CLEANFILES += $(EXTRA_PROGRAMS)

BENCH_THREADS = 2 1

bench: bench-kernels
bench-kernels: $(BENCH_KERNELS)
	@for t in $(BENCH_THREADS); do \
	  for p in $(BENCH_KERNELS); do \
	    echo "== $$p, OMP_NUM_THREADS=$$t"; \
	    OMP_NUM_THREADS=$$t OMP_PROC_BIND=close ./$$p || exit 1; \
	  done; \
	done
.PHONY: bench bench-kernels

# ---- MintNet against the PyTorch peer (issue 6) --------------------------------------
# `make bench-mintnet` runs tests/bench/run_bench.sh: our bench_mintnet and the
# PyTorch peer (tests/bench/mintnet_torch.py, /usr/bin/python3 with Debian's
# python3-torch) on the same checkpoint, data and batch; it checks first that
# both compute the same log-likelihood, then writes the table of ratios to
# bench-mintnet.md (BENCH_MINTNET_OUT), with .json and .svg siblings (raw
# results and checkpoints in bench-mintnet.d/). `make bench`
# runs it too (run `make bench` without -j: timings must not overlap).
EXTRA_PROGRAMS += tests/bench/bench_mintnet
tests_bench_bench_mintnet_SOURCES = tests/bench/bench_mintnet.c
tests_bench_bench_mintnet_CFLAGS = $(AM_CFLAGS) $(ZLIB_CFLAGS)
tests_bench_bench_mintnet_LDADD = libmintgrad.la $(ZLIB_LIBS) $(OPENMP_CFLAGS) -lm
EXTRA_DIST += tests/bench/run_bench.sh tests/bench/mintnet_torch.py tests/bench/check_torch_peer.py \
	tests/bench/bench_report.py tests/bench/perf_summary.py

BENCH_MINTNET_OUT = bench-mintnet.md
CLEANFILES += bench-mintnet.md bench-mintnet.json bench-mintnet.svg
bench-mintnet: tests/bench/bench_mintnet$(EXEEXT) plugins/mintnet/mintnet.la
	$(SHELL) $(srcdir)/tests/bench/run_bench.sh --src $(srcdir) --bin tests/bench/bench_mintnet$(EXEEXT) \
	  --out $(BENCH_MINTNET_OUT) --work bench-mintnet.d
bench: bench-mintnet
.PHONY: bench-mintnet
