# The two commands of the README, run as root: `make run` and `make test`.
.PHONY: run test install bench docs

run:
	bash scripts/install.sh
	.venv/bin/lmp run

test:
	bash scripts/install.sh --test
	.venv/bin/python -m pytest

bench:
	bash scripts/install.sh --test
	.venv/bin/lmp bench

# The docs site, into site/ (strict: a broken link fails). `.venv/bin/mkdocs serve` to read it as you edit.
docs:
	bash scripts/install.sh --docs
	.venv/bin/mkdocs build --strict
