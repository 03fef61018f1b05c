# The three commands of the README. `run` and `test` set up first when needed, so each
# works as the very first command on a fresh clone.
PY = "$$(cat .setup/python)"
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup run test

setup:
	@bash scripts/setup.sh

run:
	@bash scripts/setup.sh --if-needed
	$(PY) -m keras_simclr $(ARGS)

test:
	@bash scripts/setup.sh --if-needed
	$(PY) -m pytest $(PYTEST_ARGS)
