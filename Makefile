# refinery — the only entry points: build, run, test, bench, deps.
# `make run` and `make test` install what they need themselves (scripts/deps.sh),
# so a newcomer on a fresh Debian machine types nothing else.

CC      ?= cc
BUILD   ?= build
PKGS    := libmicrohttpd jansson libpq libcurl openssl oniguruma libutf8proc
# pkg-config runs lazily (=, not :=) so that `make deps` can install the
# packages before anything asks for their flags.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
CPPFLAGS = -fopenmp -D_GNU_SOURCE -I. -I$(BUILD)/gen -I/usr/include/x86_64-linux-gnu/openblas-pthread $(PKG_CFLAGS)
OPT     ?= -O2 -g -march=x86-64-v2
LDLIBS   = $(PKG_LIBS) -fopenmp -lopenblas -llapacke -lpthread -lm
SAN     := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Every .c under the three layers is part of the library except the entry point.
LIB_SRC  := $(wildcard engine/*/*.c service/*.c handlers/*.c cli/*.c)
C_FILES   = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null)
MIGRATIONS := $(sort $(wildcard migrations/*.sql))
GEN_SRC  := $(BUILD)/gen/rf_embedded.c
UNIT_SRC := $(wildcard tests/unit/test_*.c)
BENCH_SRC := $(wildcard bench/*/*.c)

OBJ      := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/rf_embedded.o
ASAN_OBJ := $(LIB_SRC:%.c=$(BUILD)/asan/%.o) $(BUILD)/asan/gen/rf_embedded.o
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/asan/tests/%)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all asan deps run test bench clean format unit fuzz fuzz-build
all: $(BUILD)/refinery

deps:
	@./scripts/deps.sh

# Embedded files: migrations and the OpenAPI contract travel inside the binary.
$(GEN_SRC): scripts/embed.sh $(MIGRATIONS) $(wildcard openapi/openapi.yaml)
	@mkdir -p $(@D)
	./scripts/embed.sh $@ $(MIGRATIONS) $(wildcard openapi/openapi.yaml)

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(OPT) $(CPPFLAGS) -c $< -o $@
$(BUILD)/asan/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(SAN) $(CPPFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(OPT) $(CPPFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/asan/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(SAN) $(CPPFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/librefinery.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/asan/librefinery.a: $(ASAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/refinery: $(BUILD)/obj/cmd/refinery.o $(BUILD)/librefinery.a
	$(CC) $(OPT) -o $@ $^ $(LDLIBS)
$(BUILD)/asan/refinery: $(BUILD)/asan/cmd/refinery.o $(BUILD)/asan/librefinery.a
	$(CC) $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/tests/%: $(BUILD)/asan/tests/unit/%.o $(BUILD)/asan/librefinery.a
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(BUILD)/librefinery.a
	@mkdir -p $(@D)
	$(CC) $(WARN) $(OPT) $(CPPFLAGS) -o $@ $^ $(LDLIBS)

asan: $(BUILD)/asan/refinery $(UNIT_BIN)

# Fuzz targets (tests/fuzz/): libFuzzer from Debian's clang, the parsers
# built with coverage and ASan+UBSan. The CPU kernels (ops_cpu.c uses GCC's
# target builtins) are linked in plain: no parser lives there.
FUZZ_CC    ?= clang
GCC_INC     = $(shell gcc -print-file-name=include)
FUZZ_SAN   := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_FLAGS  = -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -fopenmp=libgomp -idirafter $(GCC_INC) -D_GNU_SOURCE -I. -I$(BUILD)/gen -I/usr/include/x86_64-linux-gnu/openblas-pthread $(PKG_CFLAGS)
FUZZ_LIB_SRC := $(filter-out engine/backend/ops_cpu.c,$(wildcard engine/*/*.c)) service/range.c service/headers.c service/ids.c
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_OBJ   := $(FUZZ_LIB_SRC:%.c=$(BUILD)/fuzz/obj/%.o) $(BUILD)/fuzz/plain/ops_cpu.o

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_SAN) -MMD -MP -c $< -o $@
$(BUILD)/fuzz/plain/ops_cpu.o: engine/backend/ops_cpu.c
	@mkdir -p $(@D)
	$(CC) $(WARN) -O2 -g $(CPPFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/fuzz/librefinery.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/fuzz/%: $(BUILD)/fuzz/obj/tests/fuzz/%.o $(BUILD)/fuzz/librefinery.a
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS) -lgomp -lopenblas -llapacke -lpthread -lm

fuzz-build: $(FUZZ_BIN)

# `make fuzz` runs every target FUZZ_SECONDS (default 60) from its corpus;
# `make test` replays the corpora and fuzzes each target a few seconds.
fuzz:
	@./scripts/deps.sh
	@$(MAKE) --no-print-directory fuzz-build
	@./scripts/fuzz.sh $${FUZZ_SECONDS:-60}

run:
	@./scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@./scripts/run.sh

test:
	@./scripts/deps.sh
	@$(MAKE) --no-print-directory all asan fuzz-build
	@./scripts/test.sh

bench:
	@./scripts/deps.sh
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@./scripts/bench.sh

format:
	clang-format -i $(C_FILES)

# The Docker Compose deployment, built and exercised for real (docker/, README).
.PHONY: docker-test
docker-test:
	@./scripts/docker-test.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name "*.d" 2>/dev/null)
