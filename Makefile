# Switchboard build. `make` builds build/switchboard; `make asan` the same with
# Address+UndefinedBehavior sanitizers in build/asan/; `make test` installs what
# is missing, builds both, starts the private MariaDB and runs every suite;
# `make run` sets up and serves on http://localhost:8080.
#
# Objects and dependency files live under build/ (or build/asan/); a change of
# compiler flags is recorded in build/.../flags and forces a rebuild.

SHELL := /bin/bash
CC ?= cc
CXX ?= c++
PKGS := libwebsockets mariadb jansson libsodium inih libpcre2-8 libcurl libetpan gnutls
SANITIZER ?=

O := build
ifneq ($(SANITIZER),)
O := build/asan
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Wno-format-nonliteral
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) -Iinclude $(CFLAGS) -MMD -MP \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ALL_CXXFLAGS = -std=c++17 $(filter-out -std=c17 -Wstrict-prototypes,$(ALL_CFLAGS))
# libetpan's .pc carries Debian's -specs=no-pie-link.specs: not ours to impose.
LIBS := $(filter-out -specs=%,$(shell pkg-config --libs $(PKGS) 2>/dev/null)) -lphonenumber -lidn2 -lstdc++ -lpthread
ifneq ($(SANITIZER),)
ALL_CFLAGS += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=$(SANITIZER)
endif

SRC := $(wildcard src/*.c) $(wildcard channels/*.c)
# The one C++ file: the libphonenumber wrapper behind a C function.
SRC_CXX := $(wildcard src/*.cc)
OBJ := $(SRC:%.c=$(O)/%.o) $(SRC_CXX:%.cc=$(O)/%.o)
LIB_OBJ := $(filter-out $(O)/src/main.o,$(OBJ))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/unit/%)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(O)/tests/integration/%)
INTEG_HARNESS := $(O)/tests/integration/harness.o $(O)/tests/integration/wsclient.o
TEST_LIBS := $(shell pkg-config --libs cmocka libcurl 2>/dev/null)

# Run a command with the private MariaDB up (unless SWITCHBOARD_DB names another
# server); a server this started is stopped again afterwards, whatever the result.
WITH_LOCALDB := scripts/with-localdb

.PHONY: all asan test test-unit test-integration test-e2e run deps web e2e-deps localdb bench \
	format clean check-format tests-build
all: $(O)/switchboard

# Record the flags; a different set rewrites the file and rebuilds everything.
$(O)/flags: FORCE
	@mkdir -p $(O)
	@echo '$(CC) $(ALL_CFLAGS) $(LDFLAGS) $(LIBS)' | cmp -s - $@ || \
		echo '$(CC) $(ALL_CFLAGS) $(LDFLAGS) $(LIBS)' > $@
FORCE:

$(O)/%.o: %.c $(O)/flags
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

$(O)/%.o: %.cc $(O)/flags
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	@$(CXX) $(ALL_CXXFLAGS) -c $< -o $@

$(O)/libswitchboard.a: $(LIB_OBJ)
	@echo "  AR      $@"
	@rm -f $@ && ar rcs $@ $^

$(O)/switchboard: $(O)/src/main.o $(O)/libswitchboard.a
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(O)/tests/unit/%: tests/unit/%.c $(O)/libswitchboard.a $(O)/flags
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/libswitchboard.a $(LIBS) $(TEST_LIBS)

$(O)/tests/integration/%: tests/integration/%.c $(INTEG_HARNESS) $(O)/libswitchboard.a $(O)/flags
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CC) $(ALL_CFLAGS) -Itests/integration $(LDFLAGS) -o $@ $< $(INTEG_HARNESS) \
		$(O)/libswitchboard.a $(LIBS) $(TEST_LIBS)

$(INTEG_HARNESS): ALL_CFLAGS += -Itests/integration

$(O)/bench/%: bench/%.c $(O)/libswitchboard.a $(O)/flags
	@mkdir -p $(dir $@)
	@echo "  BENCH   $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/libswitchboard.a $(LIBS)

BENCH_BIN := $(patsubst bench/%.c,$(O)/bench/%,$(wildcard bench/*.c))

tests-build: $(O)/switchboard $(UNIT_BIN) $(INTEG_BIN)

asan:
	@$(MAKE) --no-print-directory SANITIZER=address,undefined all

deps:
	@scripts/deps

# The web view's npm packages (DOMPurify) copied into web/vendor/; and what the browser
# tests need (Chromium, Node.js, playwright-core).
web:
	@scripts/web-build

e2e-deps:
	@scripts/e2e-deps

localdb:
	@scripts/localdb start

# The suites run against the sanitizer build: a leak, overflow or undefined
# behaviour anywhere fails the run. The e2e suite (tests/e2e/run) installs its own needs
# (scripts/e2e-deps, scripts/web-build) and counts a failure to do so as a failed test, so
# the other suites still run and report.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZER=address,undefined tests-build
	@$(WITH_LOCALDB) tests/run build/asan

test-unit: deps
	@$(MAKE) --no-print-directory SANITIZER=address,undefined tests-build
	@tests/run build/asan unit

test-integration: deps
	@$(MAKE) --no-print-directory SANITIZER=address,undefined tests-build
	@$(WITH_LOCALDB) tests/run build/asan integration

test-e2e: deps
	@$(MAKE) --no-print-directory SANITIZER=address,undefined build/asan/switchboard
	@$(WITH_LOCALDB) tests/run build/asan e2e

run: deps web
	@$(MAKE) --no-print-directory all
	@scripts/run

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@scripts/localdb start >/dev/null
	@for b in bench/*; do if [ -x "$$b" ] && [ -f "$$b" ]; then "$$b" || exit 1; fi; done

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(INTEG_HARNESS:.o=.d)
