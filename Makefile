# Thin wrapper around Meson. `make run` and `make test` are the README's two set-up commands.
BUILD ?= build
# The example listens on loopback only.
HOST = 127.0.0.1
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
	@echo "Serving the example on http://$(HOST):$(PORT)/ (ephemeral: every request starts"
	@echo "from the frozen image). Try: curl http://$(HOST):$(PORT)/   Stop with Ctrl-C."
	$(BUILD)/kvmserver --allow-listen=$(HOST):$(PORT) -e run $(BUILD)/examples/httpd $(PORT)

test: deps build
	@tests/run-all.sh $(BUILD)

bench: build
	bench/syscalls.sh $(BUILD)

clean:
	rm -rf $(BUILD)
