# tests/bench/local.mk: benchmarks. `make bench` builds and runs them (with
# OMP_NUM_THREADS=2, then 1); plain `make` and `make check` neither build nor
# run them, since timings on a shared two-core machine are not tests.
# bench_conv also times the private oneDNN layer (ops/dnnl.h) on its own.
EXTRA_PROGRAMS = tests/bench/bench_conv
tests_bench_bench_conv_SOURCES = tests/bench/bench_conv.c
tests_bench_bench_conv_CFLAGS = $(AM_CFLAGS)
tests_bench_bench_conv_LDADD = libmintgrad.la -lm
CLEANFILES += $(EXTRA_PROGRAMS)

BENCH_THREADS = 2 1

bench: $(EXTRA_PROGRAMS)
	@for t in $(BENCH_THREADS); do \
	  for p in $(EXTRA_PROGRAMS); do \
	    echo "== $$p, OMP_NUM_THREADS=$$t"; \
	    OMP_NUM_THREADS=$$t OMP_PROC_BIND=close ./$$p || exit 1; \
	  done; \
	done
.PHONY: bench
