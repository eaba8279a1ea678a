# tinyrope build.
#   make            build ./train (the one program: tokenizer, data preparation, training, sampling)
#                   and the report tools $(BUILD)/plot and $(BUILD)/table (scripts/)
#   make test       build and run every test twice: optimised, then under ASan + UBSan
#   make demo       the main job on the shipped TinyStories sample (see README)
#   make tiny       a seconds-long run of a 2-layer model on the sample (docs/tour.md starts here)
#   make bench      benchmarks (make bench-tokenizer: tokenizer only)
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (default 60) each, clang + ASan + UBSan
#                   (tests/fuzz/README.md); FUZZ_TARGETS="tok_file config" picks some
# Overridable: CC, CFLAGS, LDFLAGS, NO_OMP=1 (build without OpenMP), SAN=1 (sanitizer build).

CC ?= cc
# Parallel by default, one job per core; benchmarks run one at a time (bench below).
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_DIR  := /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_INC  := /usr/include/$(MULTIARCH)/openblas-openmp

ifeq ($(SAN),1)
  BUILD  ?= build-san
  OPT    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  SANLD  := -fsanitize=address,undefined
else
  BUILD  ?= build
  # -march=native where the compiler accepts it (as llm.c does).
  NATIVE := $(shell $(CC) -march=native -x c -E /dev/null >/dev/null 2>&1 && echo -march=native)
  OPT    := -O3 $(NATIVE) -g
endif

ifeq ($(NO_OMP),1)
  OMPFLAGS := -Wno-unknown-pragmas
else
  OMPFLAGS := -fopenmp
endif

# CFLAGS/LDFLAGS are the user's (default: optimisation); what the build needs is kept apart so
# that `make CFLAGS=-O2` still builds.
CFLAGS  ?= $(OPT)
TR_CFLAGS  := -std=c11 -Wall -Wextra -Wno-unused-parameter -MMD -MP -I. -I$(BLAS_INC) $(OMPFLAGS)
TR_LDFLAGS := $(SANLD) $(filter -fopenmp,$(OMPFLAGS)) -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR)
LDLIBS  += -lopenblas -lcjson -lstb -lm

LIB_SRCS := $(wildcard base/*.c tokenizer/*.c data/*.c model/*.c cli/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
DEPS_OK  := build/.deps-ok

# The report tools: plot (PNG figure) and table (Markdown) over runs' log.csv files, and figure
# (the teaching figures of docs/figures/). Their shared and testable code is in REPORT_OBJS; the
# mains (scripts/plot.c, scripts/table.c, scripts/figure.c) are thin.
REPORT_OBJS := $(addprefix $(BUILD)/scripts/,series.o report_plot.o report_table.o figure_posenc.o figure_model.o)
REPORT_BINS := $(BUILD)/plot $(BUILD)/table $(BUILD)/figure

.SECONDARY:
.PHONY: all test test-fast test-san demo tiny bench bench-tokenizer bench-train bench-hdd bench-peers clean deps fuzz fuzz-build

all: train $(REPORT_BINS)

# Installs the Debian packages if a header is missing (or says which command to run).
$(DEPS_OK): scripts/install_deps.sh
	@sh scripts/install_deps.sh
	@mkdir -p build && touch $@
deps: $(DEPS_OK)

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(TR_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libtinyrope.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/train: $(BUILD)/train.o $(BUILD)/libtinyrope.a
	$(CC) $(TR_LDFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

train: $(BUILD)/train
	cp $(BUILD)/train ./train

$(REPORT_BINS): $(BUILD)/%: $(BUILD)/scripts/%.o $(REPORT_OBJS) $(BUILD)/libtinyrope.a
	$(CC) $(TR_LDFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libtinyrope.a
	$(CC) $(TR_LDFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# test_report and test_figure call the report tools' functions (and run the binaries for their errors).
$(BUILD)/tests/test_report $(BUILD)/tests/test_figure: $(BUILD)/tests/%: $(BUILD)/tests/%.o $(REPORT_OBJS) $(BUILD)/libtinyrope.a
	$(CC) $(TR_LDFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# test_fuzz_regressions replays the committed fuzz inputs through the fuzz targets' functions.
FUZZ_TARGET_SRCS := $(wildcard tests/fuzz/fuzz_support.c tests/fuzz/targets_*.c)
$(BUILD)/tests/test_fuzz_regressions: $(BUILD)/tests/test_fuzz_regressions.o \
		$(FUZZ_TARGET_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/libtinyrope.a
	$(CC) $(TR_LDFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The test command of the README: the fast build, then the sanitizer build on small inputs.
test: deps
	@sh tests/run.sh

test-fast: $(TEST_BINS) $(BUILD)/train $(REPORT_BINS)
	@sh tests/run_binaries.sh $(BUILD) $(TEST_BINS)

test-san:
	@$(MAKE) --no-print-directory SAN=1 test-fast

demo: train
	sh scripts/demo.sh

tiny: train
	./train run configs/tiny.json

bench-tokenizer: train
	sh scripts/bench_tokenizer.sh

# Training step: this machine's sgemm peak, then tokens/s, ms per phase and the fraction of the
# peak for the two shapes of the README table, on 1 and 2 threads.
bench-train: $(BUILD)/tests/bench_train
	OMP_NUM_THREADS=2 $(BUILD)/tests/bench_train
	OMP_NUM_THREADS=1 $(BUILD)/tests/bench_train rope 768 4 16 512 4096 4

# HDD-RoPE against RoPE: for c = 2, 3, 4, 8, 16, dynamic expm, dynamic Cayley and static, each
# paired with RoPE in one process (bench_train --pair), at the small shape on 1 thread and the
# author's on 2; prints the Markdown table of docs/performance.md (scripts/bench_hdd.sh; ROUNDS,
# SHAPES and CHUNKS pick a part of it). Then the kind's forward + backward alone (bench_posenc).
bench-hdd: $(BUILD)/tests/bench_train $(BUILD)/tests/bench_posenc
	sh scripts/bench_hdd.sh $(BUILD)/tests/bench_train
	@for c in 2 3 4 8 16; do for map in expm cayley; do \
	    if [ $$c = 3 ]; then C=96; else C=128; fi; \
	    OMP_NUM_THREADS=1 $(BUILD)/tests/bench_posenc "{\"kind\":\"hddrope\",\"chunk\":$$c,\"map\":\"$$map\"}" 16 256 $$C 4; \
	done; done

# The published peers (ALiBi, FoX, PaTH, and FoX on RoPE, HDD-RoPE and PaTH) against RoPE, paired
# as above at both shapes (scripts/bench_peers.sh; ROUNDS and SHAPES as for bench-hdd).
bench-peers: $(BUILD)/tests/bench_train
	sh scripts/bench_peers.sh $(BUILD)/tests/bench_train

bench:
	$(MAKE) --no-print-directory bench-tokenizer
	$(MAKE) --no-print-directory bench-train
	$(MAKE) --no-print-directory bench-hdd
	$(MAKE) --no-print-directory bench-peers

# Fuzzing: libFuzzer with ASan + UBSan through clang, in its own build directory, without
# OpenMP (one thread: reproducible, and no libomp next to OpenBLAS's libgomp). One binary per
# target, named in tests/fuzz/fuzz_targets.h; seeds are generated into $(FUZZ_BUILD)/seeds.
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(shell grep -o 'X([a-z0-9_]*)' tests/fuzz/fuzz_targets.h | sed 's/^X(//; s/)$$//')
FUZZ_CFLAGS  := -std=c11 -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas -MMD -MP -I. -I$(BLAS_INC) \
                -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_TARGET_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LD      := -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) $(LDLIBS)

$(FUZZ_BUILD)/.clang-ok: scripts/install_deps.sh
	@FUZZ_CC=$(FUZZ_CC) sh scripts/install_deps.sh fuzz
	@mkdir -p $(FUZZ_BUILD) && touch $@

$(FUZZ_BUILD)/%.o: %.c | $(DEPS_OK) $(FUZZ_BUILD)/.clang-ok
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_entry.c $(FUZZ_OBJS) | $(FUZZ_BUILD)/.clang-ok
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DFUZZ_TARGET_FN=fuzz_$* $^ -o $@ $(FUZZ_LD)

# ./train built the same way, to write the generated seeds (a tokenizer, shards, a checkpoint).
$(FUZZ_BUILD)/train: $(FUZZ_BUILD)/train.o $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(filter-out $(FUZZ_BUILD)/tests/%,$^) -o $@ $(FUZZ_LD)

$(FUZZ_BUILD)/seeds/.done: tests/fuzz/make_seeds.sh $(FUZZ_BUILD)/train
	@sh tests/fuzz/make_seeds.sh $(FUZZ_BUILD)/train $(FUZZ_BUILD)/seeds
	@touch $@

fuzz-build: $(FUZZ_BINS) $(FUZZ_BUILD)/seeds/.done

fuzz: fuzz-build
	@sh tests/fuzz/run_fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build build-san build-fuzz train

-include $(FUZZ_TARGET_SRCS:%.c=$(BUILD)/%.d) $(FUZZ_OBJS:.o=.d) $(FUZZ_BUILD)/train.d
-include $(LIB_OBJS:.o=.d) $(BUILD)/train.d $(TEST_BINS:%=%.d) $(REPORT_OBJS:.o=.d) $(REPORT_BINS:$(BUILD)/%=$(BUILD)/scripts/%.d)
