# Thin wrapper around Meson. `make run` and `make test` are the README's two set-up commands.
BUILD ?= build
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: all deps build run test clean bench

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --werror

build: $(BUILD)/build.ninja
	meson compile -C $(BUILD)

run: deps build
	$(BUILD)/kvmserver run $(BUILD)/examples/hello

test: deps build
	@tests/run-all.sh $(BUILD)

bench: build
	bench/syscalls.sh $(BUILD)

clean:
	rm -rf $(BUILD)
