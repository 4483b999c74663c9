# AgentCompress build. Plain make: one library, one CLI, one binary per test
# file; the only per-file rule is the SIMD flags for *_avx2.c / *_avx512.c.
#   make            release build (build/)
#   make SAN=1      ASan + UBSan build (build-san/)
#   make test       set up, then run the suite in both builds
#   make run        set up, then route two prompts over the default model's variants
#   make eval       the workflow benchmark's table on the test split
#   make controller retrain the shipped controller

CC      ?= cc
SAN     ?= 0
BUILD   := $(if $(filter 1,$(SAN)),build-san,build)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT     := $(if $(filter 1,$(SAN)),-O1 $(SANFLAGS),-O2)
CFLAGS  ?=
CFLAGS  += -std=c11 -g $(OPT) -Wall -Wextra -Werror -Wshadow -Wvla -pthread \
           -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc
LDFLAGS += $(if $(filter 1,$(SAN)),$(SANFLAGS)) -pthread
LDLIBS  := -lpcre2-8 -lcjson -lmicrohttpd -lcurl -lsqlite3 -lm

AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni

LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_LIB := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTLIB_OBJ := $(TEST_LIB:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libagentcompress.a
CLI      := $(BUILD)/agentcompress
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test run setup clean tests lint fuzz eval variants controller
.SECONDARY:
all: $(LIB) $(CLI) $(TESTS)

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(CLI): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TESTLIB_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

tests: $(TESTS) $(CLI)

setup:
	@scripts/setup.sh

# The main job: the variants of the default model (quantized and calibrated
# once, about a minute), then two prompts routed by the shipped controller.
run: variants
	$(CLI) run -p "Extract the element symbol from: 'The sample was mostly Fe with traces of Ni.' Only the symbol." -n 16
	$(CLI) run -p "Explain step by step why the sky is blue, then name three uses of a language model on a laptop." -n 96

VARIANTS ?= variants
MODEL    ?= models/SmolLM2-135M-Instruct.Q4_1.gguf
# The configuration grid the shipped controller routes over (quant x prune).
CONFIGS  ?= f16,q8_0,q4_0,q2_0,f16+p0.1,q8_0+p0.1,q4_0+p0.1,q2_0+p0.1
CONTROLLER ?= controllers/default.gguf

variants: setup all
	@[ -f $(VARIANTS)/manifest.json ] || $(CLI) quantize -m $(MODEL) -o $(VARIANTS)
	@grep -q prune_order $(VARIANTS)/manifest.json || { scripts/workflow_text.py bench/workflows/train.jsonl \
	    > $(VARIANTS)/calibration.txt && $(CLI) calibrate -V $(VARIANTS) --text $(VARIANTS)/calibration.txt; }

# Reproduces the shipped controller: the train split's resumable profile over
# CONFIGS (about an hour on 2 cores), then training with the defaults
# (controllers/README.md).
controller: variants
	$(CLI) profile -V $(VARIANTS) --tasks bench/workflows/train.jsonl -o $(VARIANTS)/train.sqlite --configs $(CONFIGS)
	$(CLI) train --profile $(VARIANTS)/train.sqlite -o $(CONTROLLER) --seed 1

# The workflow benchmark on the test split, from nothing: variants, a
# resumable profile over CONFIGS (about 10 minutes on 2 cores), the table.
eval: variants
	$(CLI) profile -V $(VARIANTS) --tasks bench/workflows/test.jsonl -o $(VARIANTS)/test.sqlite --configs $(CONFIGS)
	$(CLI) eval -V $(VARIANTS) -c $(CONTROLLER) --workflows bench/workflows/test.jsonl \
	    --profile $(VARIANTS)/test.sqlite --report $(VARIANTS)/eval.html

test: setup
	$(MAKE) tests
	$(MAKE) SAN=1 tests
	@scripts/run_tests.sh build build-san

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr -Isrc src
	clang-tidy --quiet $(LIB_SRC) $(CLI_SRC) -- $(CFLAGS)

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TESTS:=.d) $(TESTLIB_OBJ:.o=.d)

# Coverage-guided fuzzing of the GGUF reader (clang + libFuzzer); seeds are
# the test fixtures. Not part of `make test`.
FUZZ_SRC := src/gguf/gguf.c src/common/common.c $(wildcard src/quant/*.c)
fuzz:
	@mkdir -p build-fuzz/corpus
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -D_POSIX_C_SOURCE=200809L \
	    -D_DEFAULT_SOURCE -Isrc $(AVX512_FLAGS) tests/fuzz/fuzz_gguf.c $(FUZZ_SRC) -lm -o build-fuzz/fuzz_gguf
	cp tests/fixtures/*.gguf build-fuzz/corpus/ 2>/dev/null || true
	build-fuzz/fuzz_gguf -max_total_time=60 -max_len=65536 build-fuzz/corpus
