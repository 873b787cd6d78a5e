# Thin wrapper around CMake. Every target installs what is missing first.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test demo bench install stress clean sanitize fuzz deb deb-test

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	bash examples/demo.sh $(BUILD)

bench: build
	bash bench/run.sh $(BUILD)

stress: build
	bash tests/stress/run.sh $(BUILD)

install: build
	cmake --install $(BUILD)

# Debian packages, built in their own directory, build-deb.
deb: deps
	JOBS=$(JOBS) bash scripts/make-deb.sh build-deb

# Installs the packages on this machine (root), uses them, removes them.
deb-test: deb
	bash scripts/test-deb.sh build-deb

clean:
	rm -rf $(BUILD) build-*
