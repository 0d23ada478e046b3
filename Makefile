# A thin wrapper over CMake: the README's commands.
#   make run     install what is missing, build, start moonlog on the bank example
#   make test    install what is missing, build, run every test under one ctest summary
#   make bench   moonlog beside Redis, JetStream, Tarantool (~10 min; QUICK=1 ~2 min; bench/README.md)
#   make fuzz    every fuzz target for FUZZ_SECONDS each (default 60; FUZZ_TARGET=rpc for one),
#                with libFuzzer and ASan+UBSan in build-fuzz; docs/fuzzing.md
BUILD    ?= build
TYPE     ?= RelWithDebInfo
CC       ?= cc
SANITIZE ?= OFF
JOBS     ?= $(shell nproc)
DATA     ?= ./moonlog-data
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= $(shell command -v clang >/dev/null 2>&1 && echo clang || echo $(CC))
FUZZ_SECONDS ?= 60
FUZZ_TARGET  ?=

.PHONY: all deps build test run bench fuzz install clean format

all: build

deps:
	@tools/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) -DCMAKE_C_COMPILER=$(CC) -DML_SANITIZE=$(SANITIZE)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

run: build
	@tools/run.sh $(BUILD) $(DATA)

bench: build
	@tools/deps.sh bench
	lua5.4 bench/run.lua --build $(BUILD) $(if $(QUICK),--quick) $(BENCH_ARGS)

fuzz: deps
	@[ -f $(FUZZ_BUILD)/CMakeCache.txt ] || cmake -S . -B $(FUZZ_BUILD) \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=$(FUZZ_CC)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets
	@tools/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGET)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
