# metrictap: one plain Makefile.  `make` builds, `make test` sets up and runs
# every test, `make demo` shows a run, `make bench` prints the benchmark table.
# Quiet unless V=1; user CFLAGS are appended.

CC      ?= cc
B       := build
PKGS    := libcurl libcjson libelf libpcre2-8 yaml-0.1 sqlite3 zlib libunwind-ptrace
WERROR  ?= -Werror
OPT     ?= -O2
BASE_CFLAGS := -std=gnu11 $(OPT) -g -Wall -Wextra -Wno-format-truncation $(WERROR) -MMD -MP -D_GNU_SOURCE
PKG_CFLAGS   = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS   = $(BASE_CFLAGS) $(PKG_CFLAGS) -I. $(CFLAGS)
LIBS         = $(PKG_LIBS) -lpthread -lm

ifeq ($(V),1)
Q :=
else
Q := @
endif

# ---- sources, by folder (new files are picked up without editing this) ----
COMMON_SRC  := $(wildcard common/*.c)
PARSERS_SRC := $(wildcard parsers/*.c)
CONFIG_SRC  := $(wildcard config/*.c)
AGENT_SRC   := $(filter-out agent/main.c,$(wildcard agent/*.c))
# The uploader's backends, one file each (agent/backends/README in README.md).
AGENT_SRC   += $(wildcard agent/backends/*.c)
CLI_SRC     := $(wildcard cli/*.c)
PRELOAD_SRC := $(wildcard preload/*.c)
# The shim links only what it needs from common/, compiled position-independent.
SHIM_COMMON := common/mt_ring.c common/mt_channel.c common/mt_spawn.c common/mt_rank.c common/mt_glob.c \
               common/mt_console.c
SHIM_COMMON += common/mt_safefs.c

LIB_OBJ   := $(patsubst %.c,$(B)/obj/%.o,$(COMMON_SRC) $(PARSERS_SRC) $(CONFIG_SRC) $(AGENT_SRC))
CLI_OBJ   := $(patsubst %.c,$(B)/obj/%.o,$(CLI_SRC))
AGENT_OBJ := $(B)/obj/agent/main.o
SHIM_OBJ  := $(patsubst %.c,$(B)/pic/%.o,$(PRELOAD_SRC) $(SHIM_COMMON))

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
EXAMPLE_C  := $(wildcard examples/*.c)
EXAMPLES   := $(patsubst examples/%.c,$(B)/examples/%,$(EXAMPLE_C))
BENCH_C    := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_C))

PYTEST_DIRS := $(wildcard tests/integration tests/e2e)

SHIM  := $(B)/libmetrictap.so
AGENT := $(B)/metrictap-agent
CLI   := $(B)/metrictap

.PHONY: all deps deps-test test unit integration e2e demo bench fuzz clean install asan
all: $(SHIM) $(AGENT) $(CLI) $(EXAMPLES)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC(pic) $<")
	$(Q)$(CC) $(BASE_CFLAGS) -I. -fPIC -fvisibility=hidden -fno-stack-protector $(CFLAGS) -c $< -o $@

$(B)/libmt.a: $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# The crash handler's unwinder (libgcc_eh.a) goes into the shim statically and
# hidden, so the shim still needs libc only.  (Debian's libunwind.a is not PIC.)
SHIM_LIBS = $(shell $(CC) -print-file-name=libgcc_eh.a) -static-libgcc
$(SHIM): $(SHIM_OBJ) preload/exports.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -o $@ $(SHIM_OBJ) -Wl,--version-script=preload/exports.map \
	    -Wl,-z,now -Wl,-z,noexecstack -Wl,--exclude-libs,ALL $(SHIM_LIBS) $(LDFLAGS)

$(AGENT): $(AGENT_OBJ) $(B)/libmt.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $^ $(LIBS) $(LDFLAGS)

$(CLI): $(CLI_OBJ) $(B)/libmt.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $^ $(LIBS) $(LDFLAGS)

$(B)/tests/%: tests/unit/%.c $(B)/libmt.a tests/unit/mt_test.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmt.a $(LIBS) -ldl

$(B)/examples/%: examples/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) -O2 -Wall -Wextra $(WERROR) -o $@ $< -lm

$(B)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) -O2 -Wall -Wextra $(WERROR) -o $@ $< -lm

# ---- set-up: Debian packages and the test virtual environment ----
deps:
	$(Q)scripts/deps.sh build
deps-test:
	$(Q)scripts/deps.sh test

# ---- the two commands ----
demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

test: deps-test
	$(Q)$(MAKE) --no-print-directory all unit-bins
	$(Q)scripts/run-unit.sh $(UNIT_BINS)
	$(Q)for d in $(PYTEST_DIRS); do .venv/bin/python -m pytest -q -p no:cacheprovider $$d || exit 1; done

.PHONY: unit-bins
unit-bins: $(UNIT_BINS)
unit: all unit-bins
	$(Q)scripts/run-unit.sh $(UNIT_BINS)
integration: all
	$(Q).venv/bin/python -m pytest -q -p no:cacheprovider tests/integration
e2e: all
	$(Q).venv/bin/python -m pytest -q -p no:cacheprovider tests/e2e

bench: deps-test
	$(Q)$(MAKE) --no-print-directory all $(BENCH_BINS)
	$(Q)bench/run.sh

# libFuzzer targets (tests/fuzz) for the line parser and the config loader,
# built with clang and ASan/UBSan, FUZZ_SECONDS each; not part of make test.
FUZZ_SECONDS ?= 60
fuzz:
	$(Q)scripts/deps.sh fuzz
	$(Q)$(MAKE) --no-print-directory B=build-fuzz CC=clang WERROR= \
	    CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -Wno-unknown-warning-option" build-fuzz/libmt.a
	$(Q)scripts/fuzz.sh $(FUZZ_SECONDS)

# Sanitizer build of everything but the shim (which must link libc only).
asan:
	$(Q)$(MAKE) --no-print-directory B=build-asan CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" \
	    LDFLAGS="-fsanitize=address,undefined" $(B)-asan/metrictap $(B)-asan/metrictap-agent unit-bins

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/metrictap
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/metrictap
	install -m 0755 $(AGENT) $(DESTDIR)$(PREFIX)/lib/metrictap/metrictap-agent
	install -m 0644 $(SHIM) $(DESTDIR)$(PREFIX)/lib/metrictap/libmetrictap.so

clean:
	rm -rf $(B) build-asan build-fuzz

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# ---- system sampler tests: a stub NVML the test dlopens (tests/unit/stub_nvml.c) ----
$(B)/tests/libstub_nvml.so: tests/unit/stub_nvml.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) -shared -fPIC -O2 -Wall -Wextra $(WERROR) -o $@ $<
$(B)/tests/test_sys $(B)/tests/test_meta: $(B)/tests/libstub_nvml.so
# The sampler bench links the library (the generic bench rule does not).
$(B)/bench/agent_footprint: bench/agent_footprint.c $(B)/libmt.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmt.a $(LIBS) -ldl
