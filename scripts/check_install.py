"""Exit 0 when this interpreter finds keras_simclr in this checkout, and its backends.

`bash scripts/setup.sh --if-needed` runs it to decide whether the last set-up still
holds. Run as a script, its folder (scripts/) heads `sys.path`, not the current one,
so the checkout's own folder cannot hide an editable install made from another
checkout (a moved or copied one), whose subprocesses would fail with
"No module named keras_simclr".

    python scripts/check_install.py [CHECKOUT]   (CHECKOUT: this script's parent)
"""

import importlib.util
import os
import sys


def problem(checkout):
    """Why the set-up does not hold for `checkout`, or None when it does."""
    expected = os.path.realpath(os.path.join(checkout, "keras_simclr"))
    spec = importlib.util.find_spec("keras_simclr")
    if spec is None or not spec.submodule_search_locations:
        return "keras_simclr is not installed"
    found = os.path.realpath(list(spec.submodule_search_locations)[0])
    if found != expected:
        return f"keras_simclr is installed from {found}, not from this checkout ({expected})"
    # Found, not imported: importing TensorFlow takes seconds and logs its start-up.
    missing = [
        name for name in ("tensorflow", "keras", "jax") if importlib.util.find_spec(name) is None
    ]
    if missing:
        return f"not installed: {', '.join(missing)}"
    return None


def main(argv):
    checkout = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))
    reason = problem(checkout)
    if reason is None:
        return 0
    print(f"setup: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
