# The two commands a newcomer needs: `make run` and `make test`.
# Both install missing Debian packages first (scripts/deps), then build with
# CMake into build/. Other targets: build, asan, clean.

BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
SPOOLD_FLAGS ?=

.PHONY: all build run test asan clean deps test-deps

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

clean:
	rm -rf $(BUILD)
