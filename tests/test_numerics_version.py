"""The tiny preset's numbers are pinned to memnp.numerics.NUMERICS_VERSION: a change that alters
a job's numbers must bump the version (so that results directories of the old numbers are never
silently reused next to new ones, see memnp/experiments/stale.py) and record new pins here.

The run: ``reproduce --preset tiny --only combined --only drift`` (seed 0, the embedded MNIST
subset, the cpu backend; ideal, PF-aware and chip-aware training, the chip read 1 s to 1 year after
programming; about 2 s). Pinned: the training jobs' last-epoch training loss and accuracy, and for a
few inference jobs the number of correct test digits per repeat, the losses and the mean power.
Correct-digit counts and training accuracies are exact. Losses and powers are float sums whose
last bits differ between CPUs and BLAS builds (up to 1.5e-7 relative seen between two machines),
so they are compared to 1e-6 relative: far below any change of the model, but a change of
summation order alone may pass unseen.

To record the pins of a new version: ``PYTHONPATH=. python tests/test_numerics_version.py``
prints the entry for ``PINS`` from the current code.
"""
import math
import pprint
import sys

from memnp.experiments import presets, runner
from memnp.experiments.store import ResultsStore
from memnp.numerics import NUMERICS_VERSION

SIMULATIONS = ["combined", "drift"]
RELATIVE = 1e-6

#: {numerics version: {"train": {key: (training, last training loss, last training accuracy)},
#:  "infer": {key: (training, inference, [correct digits per repeat], [loss per repeat], mean power in W)}}}
PINS = {
    1: {
        "train": {
            "d1a0fb8b34615a34832a": ("ideal", 2.368773272576246, 0.1015625),
            "7e1ef7e25ca2657041eb": ("high_pf", 5.521739165239799, 0.14453125),
            "d7a5488e874408f9fbe3": ("chip", 5.491714187130723, 0.09375),
            "f58a66bc2c424f1cbb51": ("chip_1s", 5.6274406680004985, 0.08203125),
        },
        "infer": {
            "d73872ac90a9ff9f7538": ("ideal", "chip", [21, 21], [2.766631032187027, 2.730343146977583],
                                     0.001631195388929143),
            "f62a6c9b86acf1115086": ("high_pf", "chip", [19, 17], [6.154859875021207, 6.188319264812666],
                                     0.004675439211954995),
            "710958a69974d0a898b9": ("chip", "chip", [27, 19], [5.334067748995144, 5.597830283774553],
                                     0.004682287025158587),
            "1be05289631b177dc14f": ("chip", "chip_1y", [23, 32], [5.99269509000315, 5.7100486840742795],
                                     0.004440972253049154),
            "f93807db1bcd871dfa96": ("chip_1s", "chip_1s", [17, 27], [6.025297485641718, 5.393219079401429],
                                     0.005258928982646012),
            "980628088130fca23813": ("ideal", "chip_1y", [19, 17], [2.583731746684888, 2.7675182945043764],
                                     0.0015393646999419276),
        },
    },
}
# Version 2 changed only the numbers of training with wires on strongly coupled arrays (the
# line-resistance adjoint's residual check): the tiny combined and drift jobs are as in version 1.
PINS[2] = PINS[1]
# Version 3 changed only the cuda backend's training numbers (the device-resident pass).
PINS[3] = PINS[2]
# Version 4 too (more stages and weights trained and evaluated on the device).
PINS[4] = PINS[3]


def measure(out, keys=None):
    """The pinned quantities of a finished run in ``out`` (of the jobs ``keys``: default, all)."""
    store = ResultsStore(out)
    manifest = store.read_manifest()
    found = {"train": {}, "infer": {}}
    for key, job in sorted(manifest["jobs"].items()):
        if keys is not None and key not in keys:
            continue
        record = store.read_record(job["kind"], key)
        if job["kind"] == "train":
            history = record["history"]
            found["train"][key] = (job["training"], history["loss"][-1], history["accuracy"][-1])
        else:
            n_test = manifest["trainings"][job["training"]]["config"]["data"]["test"]
            correct = [a * n_test for a in record["accuracy"]]
            assert all(abs(c - round(c)) < 1e-9 for c in correct), correct
            power = sum(record["power"]) / len(record["power"])
            found["infer"][key] = (job["training"], job["inference"], [round(c) for c in correct],
                                   record["loss"], power)
    return found


def _close(a, b):
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=RELATIVE, abs_tol=0.0)
    return a == b


def _bump_message(what):
    return (f"{what} (NUMERICS_VERSION = {NUMERICS_VERSION}). If memnp's numbers changed on purpose, bump "
            f"NUMERICS_VERSION in memnp/numerics.py and add PINS[{NUMERICS_VERSION + 1}] to "
            "tests/test_numerics_version.py (print it with `PYTHONPATH=. python tests/test_numerics_version.py`); "
            "if not, the change altered the numbers by accident.")


def test_tiny_numbers_are_pinned_to_the_numerics_version(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMNP_BACKEND", "cpu")
    assert NUMERICS_VERSION in PINS, _bump_message(f"no pins recorded for numerics version {NUMERICS_VERSION}")
    pins = PINS[NUMERICS_VERSION]
    runner.reproduce(SIMULATIONS, presets.get("tiny"), 0, tmp_path / "r")
    found = measure(tmp_path / "r", set(pins["train"]) | set(pins["infer"]))
    for kind in ("train", "infer"):
        missing = sorted(set(pins[kind]) - set(found[kind]))
        assert not missing, f"{kind} jobs {missing} are not in the run: their keys changed (a config change, " \
                            "not a numerics one: job keys must not depend on NUMERICS_VERSION)"
        for key, expected in pins[kind].items():
            assert _close(list(found[kind][key]), list(expected)), _bump_message(
                f"the tiny preset's {kind} job {key} ({' -> '.join(expected[:1 if kind == 'train' else 2])}) "
                f"gave {found[kind][key][1:]}, pinned {expected[1:]}")


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as directory:
        runner.reproduce(SIMULATIONS, presets.get("tiny"), 0, directory)
        pins = PINS.get(NUMERICS_VERSION, PINS[max(PINS)])
        print(f"{NUMERICS_VERSION}: ", end="")
        pprint.pprint(measure(directory, set(pins["train"]) | set(pins["infer"])), width=120, stream=sys.stdout)
