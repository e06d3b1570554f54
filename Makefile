# Ferry — common tasks. `make demo` and `make test` are the README's two commands.
SWIFT ?= swift
PROTOC_GEN_SWIFT ?= .build-protoc/release/protoc-gen-swift

.PHONY: all build release test demo bench bench-hub proto deps clean lint format openapi schemathesis package check-package

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build --product ferry

release: deps
	$(SWIFT) build -c release --product ferry

# The link lab (real processes through shaped namespaces) runs on its own after
# the rest, so its load does not skew the timing-sensitive sync tests.
test: deps
	$(SWIFT) build --product ferry
	$(SWIFT) test --skip LinkLabEndToEndTests
	$(SWIFT) test --skip-build --filter LinkLabEndToEndTests
	scripts/schemathesis.sh

demo: deps
	$(SWIFT) build --product ferry
	$$($(SWIFT) build --show-bin-path)/ferry demo

bench: release
	$$($(SWIFT) build -c release --show-bin-path)/ferry bench merge --n 10000 --seed 42

# W2 (WORKLOAD.md): 124 enrolled agents x 3,120 land records into one `ferry hub serve`, K = 4.
# Override e.g. `make bench-hub BENCH_HUB_ARGS="--concurrency 16"`.
BENCH_HUB_ARGS ?= --agents 124 --records 3120 --concurrency 4 --seed 42
bench-hub: release
	$$($(SWIFT) build -c release --show-bin-path)/ferry bench hub $(BENCH_HUB_ARGS)

# The commune PC's artefact: a release `ferry` with the Swift runtime linked in
# (the PC has no toolchain), packaged as a .deb in dist/ (scripts/build-deb.sh).
# Its own scratch path, so the debug .build stays warm. `make check-package`
# installs it with dpkg, exercises it and removes it again (root; .ci/run).
PACKAGE_SCRATCH ?= .build-package
package: deps
	$(SWIFT) build -c release --product ferry --static-swift-stdlib --scratch-path $(PACKAGE_SCRATCH)
	scripts/build-deb.sh $(PACKAGE_SCRATCH)/release/ferry dist

check-package: package
	scripts/check-deb.sh $$(ls -t dist/ferry_*.deb | head -n1)

# Regenerates the committed protobuf code (needs protoc; builds the plugin once).
proto:
	@command -v protoc >/dev/null || (apt-get update && apt-get install -y protobuf-compiler)
	@test -x $(PROTOC_GEN_SWIFT) || (cd .build/checkouts/swift-protobuf && $(SWIFT) build -c release --product protoc-gen-swift --scratch-path $(CURDIR)/.build-protoc)
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --swift_opt=Visibility=Public \
		--swift_out=Sources/FerryProtocol/Generated -I protocol protocol/ferry.proto

# The hub's OpenAPI document is hand-kept in protocol/openapi.json; the binary serves a copy.
openapi:
	scripts/openapi-embed.sh

# schemathesis (PyPI, pinned) against a live hub with the operator token (bounded examples).
schemathesis: build
	scripts/schemathesis.sh

# Style (STYLE.md): swift-format with .swift-format, 120 columns; generated code excluded.
SWIFT_FILES = $(shell git ls-files '*.swift' | grep -v -e '/Generated/' -e 'FerryStore/Seed.swift' -e 'FerryHub/OpenAPIDocument.swift')
lint:
	swift-format lint --strict $(SWIFT_FILES)

format:
	swift-format format -i $(SWIFT_FILES)

clean:
	rm -rf .build
