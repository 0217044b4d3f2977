# ferry — one entry point for everything. `make setup` installs the system packages (root,
# idempotent); `make build` produces shim/containerd-shim-ferry-v2's bundle; `make test` runs
# unit and end-to-end tests; `make demo` runs a container through ferry, checkpoints and
# restores it.
SHELL := /bin/bash
NODE_BIN := node_modules/.bin

.PHONY: all setup deps native proto build install test test-unit test-e2e demo bench bench-quick build/bench/run.js clean

all: build

setup:
	bash contrib/setup.sh
	$(MAKE) deps build

deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json binding.gyp native/ferry_sys.c
	# npm ci: installs exactly the lock file and never rewrites it, so a fresh clone stays clean.
	npm ci --no-audit --no-fund
	npm exec -c 'node-gyp rebuild'
	touch $@

native: deps
	npm exec -c 'node-gyp rebuild'

# Regenerates api/gen from api/proto (needs protoc: `make setup` installs protobuf-compiler).
proto: deps
	bash api/generate.sh

build: deps
	$(NODE_BIN)/tsc -p tsconfig.json --noEmit
	node contrib/bundle.js

# Installs copies that need nothing from this tree: launchers in $(PREFIX)/bin, bundles, code
# caches and native addons in $(PREFIX)/lib/ferry (contrib/install.sh says what and why).
PREFIX ?= /usr/local
install: build
	bash contrib/install.sh "$(PREFIX)"

test: test-unit test-e2e

test-unit: build
	$(NODE_BIN)/jest --selectProjects unit

test-e2e: build
	$(NODE_BIN)/jest --selectProjects e2e --runInBand

# Bundled into build/demo/ so the test helpers find the repository two levels up.
demo: build
	$(NODE_BIN)/esbuild contrib/demo.ts --bundle --platform=node --target=node20 --log-level=warning --outfile=build/demo/demo.js
	node build/demo/demo.js

# Bundled into build/bench/ so the test helpers find the repository two levels up.
# `make bench` (unattended, ~15-25 min; records docs/benchmarks.{md,json}): every suite with
# NODE_EXTRA_CA_CERTS in containerd's environment (as on this machine), then the start-up
# sensitive suites without it. `make bench-quick`: a ~2-minute smoke run, never recorded.
build/bench/run.js: build
	$(NODE_BIN)/esbuild bench/run.ts --bundle --platform=node --target=node20 --outfile=build/bench/run.js --log-level=warning --external:zstd-napi

bench: build/bench/run.js
	BENCH_CA=set node build/bench/run.js
	BENCH_CA=unset BENCH_ONLY=lifecycle,operations BENCH_DEADLINE_MIN=5 node build/bench/run.js

bench-quick: build/bench/run.js
	BENCH_QUICK=1 node build/bench/run.js

clean:
	rm -rf dist build
