# leanprop build. `make` builds the library and CLI; `make test` runs the whole
# suite (optimised build, then the same tests under ASan+UBSan); `make demo`
# runs the main job on ../shared; `make bench` runs the benchmarks.

CC       ?= gcc
BUILD    ?= build
SANITIZE ?= 0
# Where tests, demo and benchmarks find the shared data (override by env).
LEANPROP_SHARED ?= $(abspath ../shared)
export LEANPROP_SHARED

# -march=native only where the compiler accepts it here; LEANPROP_PORTABLE=1 turns it off.
ifeq ($(LEANPROP_PORTABLE),1)
ARCH_FLAGS :=
else
ARCH_FLAGS := $(shell $(CC) -march=native -x c -c /dev/null -o /dev/null 2>/dev/null && echo -march=native)
endif

WARN     := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Wno-format-truncation
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE
ifeq ($(SANITIZE),1)
OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN    := -fsanitize=address,undefined
else
OPT      := -O3 $(ARCH_FLAGS) -g
LDSAN    :=
endif
CFLAGS   += -std=c11 $(OPT) -fPIC -fopenmp $(WARN)
LDLIBS   := -lopenblas -lcjson -lz -lpcre2-8 -lm -lpthread
LDFLAGS  += -fopenmp $(LDSAN)

LIB_SRC   := $(wildcard src/core/*.c src/kernels/*.c src/io/*.c src/nn/*.c src/train/*.c)
CLI_SRC   := $(wildcard src/cli/*.c)
TEST_SRC  := $(wildcard tests/test_*.c)
TESTUTIL  := $(wildcard tests/util/*.c)
BENCH_SRC := $(wildcard bench/bench_*.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TUTIL_OBJ := $(TESTUTIL:%.c=$(BUILD)/obj/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
DEPS_OK   := $(BUILD)/.deps-ok

.SECONDARY:
.PHONY: all lib cli tests test test-fast test-asan demo bench clean deps
all: lib cli

deps: $(DEPS_OK)
$(DEPS_OK): scripts/ensure-deps.sh
	@mkdir -p $(BUILD)
	@sh scripts/ensure-deps.sh
	@touch $@

lib: $(BUILD)/libleanprop.a $(BUILD)/libleanprop.so
cli: $(BUILD)/leanprop

$(BUILD)/obj/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libleanprop.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libleanprop.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/leanprop: $(CLI_OBJ) $(BUILD)/libleanprop.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libleanprop.a $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TUTIL_OBJ) $(BUILD)/libleanprop.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TUTIL_OBJ) $(BUILD)/libleanprop.a $(LDLIBS) -lcmocka

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/libleanprop.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libleanprop.a $(LDLIBS)

tests: $(TEST_BIN) cli

# The README's test command: optimised suite, then the same suite under sanitizers.
test:
	@$(MAKE) --no-print-directory test-fast
	@$(MAKE) --no-print-directory test-asan

test-fast: tests
	@sh tests/run_tests.sh $(BUILD)

test-asan:
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 tests
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    sh tests/run_tests.sh build-asan

demo: cli
	@sh scripts/demo.sh $(BUILD)

bench: $(BENCH_BIN) cli
	@sh scripts/bench.sh $(BUILD)

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TUTIL_OBJ:.o=.d) $(TEST_SRC:%.c=$(BUILD)/obj/%.d) $(BENCH_SRC:%.c=$(BUILD)/obj/%.d)

# ---- fuzzing (issue 7): clang + libFuzzer, one harness per parser in fuzz/fuzz_*.c,
# seed corpora in fuzz/corpus/<name>/. `make fuzz FUZZ_SECONDS=30` runs each for a bounded time.
# The library is compiled once (with fuzzer coverage, ASan, UBSan) into build-fuzz/libleanprop-fuzz.a;
# each harness links against it. UBSan findings abort (no recovery), so libFuzzer records them.
# See docs/RELIABILITY.md.
FUZZ_SECONDS ?= 20
FUZZ_CC   ?= clang
FUZZ_SRC  := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=c11 -O1 -g -fno-omit-frame-pointer -Wno-pass-failed $(FUZZ_SAN) -fopenmp -Iinclude -Isrc -D_GNU_SOURCE
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build-fuzz/obj/%.o)

# clang and its sanitizer/libFuzzer runtimes are needed only here (LEANPROP_FUZZ=1: check those too).
build-fuzz/.deps-ok: scripts/ensure-deps.sh
	@mkdir -p build-fuzz
	@LEANPROP_FUZZ=1 sh scripts/ensure-deps.sh
	@touch $@

build-fuzz/obj/%.o: %.c | $(DEPS_OK) build-fuzz/.deps-ok
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

build-fuzz/libleanprop-fuzz.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

build-fuzz/fuzz_%: fuzz/fuzz_%.c $(wildcard fuzz/*.h) build-fuzz/libleanprop-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build-fuzz/libleanprop-fuzz.a $(LDLIBS)

-include $(FUZZ_LIB_OBJ:.o=.d)

.PHONY: fuzz fuzz-build fuzz-corpus
fuzz-build: $(FUZZ_BIN)
fuzz: fuzz-build
	@sh scripts/fuzz.sh $(FUZZ_SECONDS)

# Regenerate the committed seed corpora (fuzz/corpus/<harness>/) from leanprop's writers
# (fuzz/gen_corpus.c) and hand-made bytes (fuzz/gen_corpus.py).
fuzz-corpus: $(BUILD)/libleanprop.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-unused-function -o $(BUILD)/fuzz_gen_corpus fuzz/gen_corpus.c $(BUILD)/libleanprop.a $(LDFLAGS) $(LDLIBS)
	$(BUILD)/fuzz_gen_corpus fuzz/corpus
	python3 fuzz/gen_corpus.py fuzz/corpus
