"""SimCLR training throughput on one GPU with Keras' JAX backend: images/s, % of peak.

ResNet-50 at 224 px, `mixed_bfloat16` (variables float32, the loss and similarities
float32), LARS, the reference objective, at the largest batch that fits, for two
inputs: pre-made views (uint8 arrays from the host, so that each step moves a
quarter of the float32 bytes) and uint8 images augmented inside the jitted step
(`SimCLRAugment`, ImageNet preset). Runs without TensorFlow (a JAX-only machine):
it imports Keras, JAX, NumPy and the TensorFlow-free part of keras_simclr only.

How the figures are made:

- The batch: each size of `--batches` (doubling) runs in a fresh process, from the
  smallest, until one fails (out of memory); the largest that ran is reported.
- images/s: images a step x steps / seconds between the ends of the first and the
  last timed step, each waited for (the steps in between run asynchronously).
- Fraction of peak: model FLOP/s = images/s x 2 views x 3 (forward and backward)
  x forward FLOPs (2 per multiply-add of convolutions and dense layers, 8.2 GFLOP
  for ResNet-50), over this device's bfloat16 matmul peak measured in the same run
  (the best of square 8192 x 8192 matmuls), and over `--nominal_tflops` if given.

Usage (on the GPU machine, with `pip install -e .` and `jax[cuda12]`):

    KERAS_BACKEND=jax python benchmarks/gpu_throughput.py
    KERAS_BACKEND=jax python benchmarks/gpu_throughput.py --batches=64,128 --steps=5
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("KERAS_BACKEND", "jax")

import _measure  # noqa: E402  (imports no TensorFlow at module level)

SCRIPT = os.path.abspath(__file__)
MODES = ("views", "in_model_augmentation")
_SIZE = 224


def _build(mode):
    import keras

    import keras_simclr as ks

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    encoder = ks.models.resnet(50, input_shape=(_SIZE, _SIZE, 3))
    head = ks.models.projection_head(encoder.output_shape[-1], output_dim=128)
    augmenter = (
        ks.augment.SimCLRAugment(_SIZE, preset="imagenet", seed=0)
        if mode == "in_model_augmentation"
        else None
    )
    model = ks.models.SimCLR(encoder, head, augmenter=augmenter, temperature=0.1)
    model.compile(optimizer=ks.optimizers.LARS(0.3, weight_decay=1e-6))
    return model, encoder


def measure(config):
    """Times `SimCLR.fit()` at one batch size and mode, in this process."""
    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        raise ValueError(f"Run with KERAS_BACKEND=jax; the backend is {keras.backend.backend()!r}.")
    model, encoder = _build(config["mode"])
    batch_size, steps = config["batch_size"], config["steps"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size, _SIZE, _SIZE, 3), dtype="uint8")
    if config["mode"] == "views":
        inputs = (images, images[::-1].copy())
    else:
        inputs = images

    class StepTimer(keras.callbacks.Callback):
        def __init__(self, last):
            super().__init__()
            self.last, self.ends = last, []

        def on_train_batch_end(self, batch, logs=None):
            if batch in (0, self.last):
                float(logs["loss"])  # waits for this step and those before it
                self.ends.append(time.perf_counter())

    def fit(count, callbacks=()):
        # The same batch, `count` times: the host's input costs as little as it can.
        if isinstance(inputs, tuple):
            x = tuple(np.concatenate([a] * count) for a in inputs)
        else:
            x = np.concatenate([inputs] * count)
        model.fit(x, batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                  callbacks=list(callbacks))

    fit(2)
    timer = StepTimer(steps)
    fit(steps + 1, [timer])
    seconds = timer.ends[-1] - timer.ends[0]
    return dict(
        images_per_second=batch_size * steps / seconds,
        forward_flops=_measure.forward_flops(encoder) + _measure.forward_flops(model.projection_head),
    )


def bf16_matmul_peak(size=8192, repeats=10):
    """The best bfloat16 matmul FLOP/s of this device, from square `size` matmuls."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.bfloat16)
    b = jnp.ones((size, size), jnp.bfloat16)
    matmul = jax.jit(lambda a, b: a @ b)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _child(config, timeout):
    env = dict(os.environ, KERAS_BACKEND="jax")
    completed = subprocess.run(
        [sys.executable, SCRIPT, "--child", json.dumps(config)],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        return None, completed.stderr.strip().splitlines()[-1:] or ["no output"]
    return json.loads(lines[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64,128,256,512,1024,2048",
                        help="batch sizes to try, smallest first")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--modes", default=",".join(MODES), help=",".join(MODES))
    parser.add_argument("--nominal_tflops", type=float, default=None,
                        help="the device's nominal dense bf16 TFLOP/s, for a second fraction")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per batch size")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(json.loads(args.child))), flush=True)
        return
    import jax

    peak = bf16_matmul_peak()
    print(f"device: {jax.devices()[0].device_kind}; bf16 matmul peak {peak / 1e12:.0f} TFLOP/s")
    print("| input | largest batch that ran | images/s | model TFLOP/s | of bf16 matmul peak |"
          + (" of nominal |" if args.nominal_tflops else ""))
    print("| --- | ---: | ---: | ---: | ---: |" + (" ---: |" if args.nominal_tflops else ""))
    for mode in args.modes.split(","):
        best, failure = None, None
        for batch_size in (int(b) for b in args.batches.split(",")):
            result, failure = _child(
                dict(mode=mode, batch_size=batch_size, steps=args.steps), args.timeout
            )
            if result is None:
                print(f"  {mode}: batch {batch_size} failed: {failure[0][:200]}", file=sys.stderr)
                break
            best = (batch_size, result)
        if best is None:
            print(f"| {mode} | none | - | - | - |")
            continue
        batch_size, result = best
        flops = result["images_per_second"] * 2 * 3 * result["forward_flops"]
        row = (f"| {mode} | {batch_size} | {result['images_per_second']:.0f} | "
               f"{flops / 1e12:.0f} | {flops / peak:.0%} |")
        if args.nominal_tflops:
            row += f" {flops / (args.nominal_tflops * 1e12):.0%} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
