# The three commands of the README. `run` and `test` set up first when needed, so each
# works as the very first command on a fresh clone. `test` runs both backends' suites;
# `test-tensorflow` and `test-jax` run one.
PY = "$$(cat .setup/python)"
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup run test test-tensorflow test-jax

setup:
	@bash scripts/setup.sh

run:
	@bash scripts/setup.sh --if-needed
	$(PY) -m keras_simclr $(ARGS)

# Keras fixes its backend per process: the TensorFlow suite, then the JAX one
# (tests/jax, on two XLA CPU devices) in a process of its own.
test: test-tensorflow test-jax

test-tensorflow:
	@bash scripts/setup.sh --if-needed
	KERAS_BACKEND=tensorflow $(PY) -m pytest $(PYTEST_ARGS)

test-jax:
	@bash scripts/setup.sh --if-needed
	KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \
		$(PY) -m pytest tests/jax $(JAX_PYTEST_ARGS)
