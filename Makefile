# A thin wrapper over CMake: the README's commands.
#   make run     install what is missing, build, start moonlog on the bank example
#   make test    install what is missing, build, run every test under one ctest summary
#   make bench   moonlog beside Redis, JetStream, Tarantool (~10 min; QUICK=1 ~2 min; bench/README.md)
#   make count   the hot paths in instructions per event under callgrind (~3 min; bench/count.sh)
#   make fuzz    every fuzz target for FUZZ_SECONDS each (default 60; FUZZ_TARGET=rpc for one),
#                with libFuzzer and ASan+UBSan in build-fuzz; docs/fuzzing.md
#   make soak    kill -9 rounds against the real server under load (ROUNDS=1000, ~0.7 s a round),
#                checking after each restart that nothing acknowledged is lost, doubled or
#                reordered and that handlers emit exactly once (tools/soak.lua, docs/operations.md);
#                exit status 1 on any failure. `make test` runs a 3-round smoke of it.
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
ROUNDS   ?= 1000

.PHONY: all deps build test run bench count fuzz soak install clean format

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

count: deps
	bench/count.sh --build $(BUILD) $(COUNT_ARGS)

fuzz: deps
	@[ -f $(FUZZ_BUILD)/CMakeCache.txt ] || cmake -S . -B $(FUZZ_BUILD) \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=$(FUZZ_CC)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets
	@tools/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGET)

soak: build
	MOONLOG_BIN=$(abspath $(BUILD))/moonlog LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' \
	  LUA_CPATH='$(abspath $(BUILD))/lua/?.so;;' lua5.4 tools/soak.lua --rounds $(ROUNDS) $(SOAK_ARGS)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
