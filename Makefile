# One command runs the main job, one runs the tests; each sets itself up on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first at an exact version: a bare `torch` would pull a multi-GB CUDA build.
TORCH_VERSION ?= 2.13.0

# tritonclient.grpc needs protobuf 6, the policy pack's SDK protobuf 5.29: the real gRPC client
# that the tests and `aiinfra bench --grpc` drive lives in a venv of its own.
CLIENT_VENV ?= .venv-grpc-client
TRITONCLIENT_VERSION ?= 2.73.0

.PHONY: run serve test lint bench install services clean protos

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev,infra,bench]'
	touch $@

$(CLIENT_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/python -m pip install --quiet 'tritonclient[grpc]==$(TRITONCLIENT_VERSION)'
	touch $@

install: $(VENV)/.installed $(CLIENT_VENV)/.installed

protos: install ## compile serving/rpc/*.proto into the descriptors the runtime loads
	$(PY) -m grpc_tools.protoc -Iserving/rpc --descriptor_set_out=serving/rpc/descriptors.binpb inference.proto health.proto

services: ## the PostgreSQL and Redis binaries the tests start throwaway servers from
	tests/support/install-services.sh

run: install ## the dev stack's offline preview: the resource graph, no cloud needed
	$(VENV)/bin/aiinfra preview dev

serve: install ## serve the demo repository on http://127.0.0.1:8000
	$(VENV)/bin/aiinfra serve

test: install services ## lint, check the layers between packages, then the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo

bench: install services ## the side-by-side benchmarks recorded in docs/BENCHMARKS.md
	$(VENV)/bin/aiinfra bench --compare --generator wrk --peers litserve,kserve --workers 1,2 --model mlp --payload json --concurrency 32 --duration 15 --warmup 3 --repeat 3 --output docs/bench/mlp-json-c32.json
	$(VENV)/bin/aiinfra bench --compare --generator wrk --workers 1,2 --model resnet18 --payload binary --concurrency 32 --duration 20 --warmup 5 --repeat 3 --output docs/bench/resnet18-binary-c32.json
	$(VENV)/bin/aiinfra bench --overload --model resnet18 --payload binary --saturation 16 --factor 8 --deadline-ms 1000 --duration 15 --warmup 3 --rounds 3 --output docs/bench/resnet18-overload.json
	$(VENV)/bin/aiinfra bench --transports --model mlp --concurrency 32 --duration 10 --warmup 2 --rounds 3 --output docs/bench/mlp-transports-c32.json
	$(VENV)/bin/aiinfra bench --transports --model resnet18 --concurrency 32 --duration 10 --warmup 3 --rounds 3 --output docs/bench/resnet18-transports-c32.json
	$(VENV)/bin/aiinfra bench --data-plane --model mlp --payload json --concurrency 32 --duration 8 --warmup 1 --repeat 10 --rounds 4 --server-cpus 0 --client-cpus 1 --output docs/bench/mlp-dataplane-c32-pinned.json
	$(VENV)/bin/aiinfra bench --data-plane --model mlp --payload json --concurrency 32 --duration 8 --warmup 1 --repeat 6 --rounds 4 --output docs/bench/mlp-dataplane-c32.json
	$(VENV)/bin/aiinfra bench --data-plane --model resnet18 --payload binary --concurrency 32 --duration 20 --warmup 3 --repeat 3 --rounds 2 --output docs/bench/resnet18-dataplane-c32.json

clean:
	rm -rf $(VENV) $(CLIENT_VENV) .pytest_cache .ruff_cache
