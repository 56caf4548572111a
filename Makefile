# The two commands a newcomer needs: `make run` and `make test`.
# Both install missing Debian packages first (scripts/deps), then build with
# CMake into build/. Other targets: build, asan (the suite under ASan and
# UBSan), tsan (the threaded tests under ThreadSanitizer), fuzz (libFuzzer
# sessions, see docs/fuzzing.md), clean.

BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
SPOOLD_FLAGS ?=

.PHONY: all build run test asan tsan fuzz install clean deps test-deps

all: build

deps:
	@./scripts/deps

test-deps:
	@./scripts/deps --test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPOOL_WERROR=$(if $(CI),ON,OFF) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/bin/spoold -d ./data $(SPOOLD_FLAGS)

test: build test-deps
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# The whole suite again under AddressSanitizer and UndefinedBehaviorSanitizer.
asan: deps test-deps
	@cmake -S . -B $(BUILD)/asan -DCMAKE_BUILD_TYPE=Debug -DSPOOL_WERROR=ON -DSPOOL_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)/asan -j $(JOBS)
	@cd $(BUILD)/asan && ctest --output-on-failure -j $(JOBS) --timeout 900

# The tests that exercise threads (the journal writer) under ThreadSanitizer.
tsan: deps test-deps
	@cmake -S . -B $(BUILD)/tsan -DCMAKE_BUILD_TYPE=Debug -DSPOOL_WERROR=ON -DSPOOL_TSAN=ON >/dev/null
	@cmake --build $(BUILD)/tsan -j $(JOBS)
	@cd $(BUILD)/tsan && ctest --output-on-failure -j $(JOBS) --timeout 900 -L threads

# Runs the libFuzzer targets with clang (build/fuzz): FUZZ=NAME for one target
# (default: all in turn), FUZZ_SECONDS per target (default 60).
FUZZ ?= all
FUZZ_SECONDS ?= 60
fuzz:
	@./scripts/fuzz $(FUZZ) $(FUZZ_SECONDS)

# Installs spoold, spool, libspool (shared and static), its headers and
# spool.pc under PREFIX (default /usr/local), staged under DESTDIR if set.
PREFIX ?= /usr/local
install: build
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
