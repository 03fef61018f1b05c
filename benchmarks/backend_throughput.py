"""The same SimCLR training step on Keras' TensorFlow and JAX backends: images/s.

ResNet-18 with the CIFAR stem at width x0.25, 32 px views, batch 256 (512 views a
step), float32, LARS, `SimCLR.fit()` on pre-made views, each backend in a fresh
process (Keras fixes its backend per process): TensorFlow in graph mode (its
default here; XLA was slower on CPU), JAX with the step compiled by XLA (its
default). images/s = images a step x steps / seconds from the end of the first
timed step to the end of the last, after warm-up steps (tracing, compilation);
every step's loss is read back, on both backends, so that JAX's asynchronous
dispatch cannot end the clock early. The ratio is JAX over TensorFlow.

Usage:

    python benchmarks/backend_throughput.py           # batch 256, 20 timed steps
    python benchmarks/backend_throughput.py --quick   # batch 64, 5 timed steps
"""

import argparse
import json
import os
import subprocess
import sys
import time

SCRIPT = os.path.abspath(__file__)
BACKENDS = ("tensorflow", "jax")


def measure(config):
    """Times `SimCLR.fit()` in this process, on the backend Keras was started with."""
    import keras
    import numpy as np

    import keras_simclr as ks

    keras.utils.set_random_seed(0)
    size, batch_size = 32, config["batch_size"]
    encoder = ks.models.resnet(18, width_multiplier=0.25, input_shape=(size, size, 3))
    head = ks.models.projection_head(encoder.output_shape[-1], output_dim=128)
    model = ks.models.SimCLR(encoder, head, temperature=0.5)
    model.compile(optimizer=ks.optimizers.LARS(0.3, weight_decay=1e-6))
    rng = np.random.default_rng(0)
    views = tuple(
        rng.uniform(size=(batch_size, size, size, 3)).astype("float32") for _ in range(2)
    )

    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # waits for the step, on both backends
            self.ends.append(time.perf_counter())

    def fit(steps, callbacks=()):
        # One batch repeated: the input pipeline costs nothing on either backend.
        inputs = tuple(np.concatenate([v] * steps) for v in views)
        model.fit(inputs, batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                  callbacks=list(callbacks))

    fit(config["warmup_steps"])
    timer = StepTimer()
    fit(config["steps"] + 1, [timer])
    seconds = timer.ends[-1] - timer.ends[0]
    return dict(
        backend=keras.backend.backend(),
        images_per_second=batch_size * config["steps"] / seconds,
        seconds=seconds,
        jit_compile=bool(model.jit_compile),
    )


def run_backend(backend, config):
    """Runs `measure(config)` in a fresh process on `backend`; returns its result."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    completed = subprocess.run(
        [sys.executable, SCRIPT, "--child", json.dumps(config)],
        capture_output=True, text=True, env=env, timeout=3600, check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"the {backend} run failed (exit code {completed.returncode}):\n"
            f"{completed.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 64, 5 timed steps")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(json.loads(args.child))), flush=True)
        return
    config = (
        dict(batch_size=64, warmup_steps=2, steps=5)
        if args.quick
        else dict(batch_size=256, warmup_steps=3, steps=20)
    )
    results = {backend: run_backend(backend, config) for backend in BACKENDS}
    print(
        f"SimCLR step, ResNet-18 x0.25 (CIFAR stem), 32 px, batch {config['batch_size']}, "
        f"float32, LARS, {config['steps']} timed steps, {os.cpu_count()} CPUs"
    )
    print("| backend | step compiled with XLA | images/s | ratio |")
    print("| --- | --- | ---: | ---: |")
    reference = results["tensorflow"]["images_per_second"]
    for backend in BACKENDS:
        result = results[backend]
        print(
            f"| {backend} | {'yes' if result['jit_compile'] else 'no'} | "
            f"{result['images_per_second']:.0f} | "
            f"{result['images_per_second'] / reference:.2f}x |"
        )


if __name__ == "__main__":
    main()
