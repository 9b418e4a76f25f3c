# The two commands of the README, run as root: `make run` and `make test`.
.PHONY: run test install bench

run:
	bash scripts/install.sh
	.venv/bin/lmp run

test:
	bash scripts/install.sh --test
	.venv/bin/python -m pytest

bench:
	bash scripts/install.sh --test
	.venv/bin/lmp bench
