# Thin wrapper around CMake. Every target installs what is missing first.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test demo bench install stress clean sanitize fuzz deb deb-test \
        windows-deps windows windows-test

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

# Windows: cross-built with mingw-w64 into build-windows, tested under
# Wine in a private prefix (build-windows/wineprefix). Wine's first start
# sets the prefix up (tens of seconds), once, before the tests run.
WINBUILD := build-windows
WINE64   := /usr/lib/wine/wine64

windows-deps:
	@bash scripts/install-deps.sh --windows

$(WINBUILD)/CMakeCache.txt: | windows-deps
	cmake -S . -B $(WINBUILD) -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake

windows: windows-deps $(WINBUILD)/CMakeCache.txt
	cmake --build $(WINBUILD) -j $(JOBS)

$(WINBUILD)/wineprefix/system.reg: | windows
	WINEPREFIX=$(CURDIR)/$(WINBUILD)/wineprefix WINEDEBUG=-all $(WINE64) wineboot -i
	WINEPREFIX=$(CURDIR)/$(WINBUILD)/wineprefix $(dir $(WINE64))wineserver -w

windows-test: windows $(WINBUILD)/wineprefix/system.reg
	cd $(WINBUILD) && ctest --output-on-failure

clean:
	rm -rf $(BUILD) build-*
