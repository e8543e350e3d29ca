.PHONY: setup hello test lint typecheck bench

setup:
	bash scripts/setup.sh

hello: setup
	node dist/cli.mjs run examples/hello.ts

typecheck: setup
	npx tsc -p tsconfig.json

lint: setup
	npx biome check .

test: setup typecheck lint
	npx vitest run

bench: setup
	node scripts/build.mjs
	node dist/bench.mjs
