"""Write tests/data/keys_before_line_resistance.json: the job keys of the paper's nine simulations,
expanded alone and all together, at the tiny, default and paper scales.

Run it against a checkout from before the line_resistance simulation (the main branch), so the file
pins the keys paper mode must keep:

    PYTHONPATH=/path/to/main python tests/data/make_keys_before_line_resistance.py OUT.json
"""
import json
import sys

from memnp.experiments import presets, registry

SOURCES = {"mnist": "mnist-10k", "cifar10": "cifar10"}
#: (scale name, run seed) pairs pinned.
CASES = (("tiny", 0), ("default", 0), ("paper", 7))
NINE = ("ideal", "iv_nonlinearity", "iv_nonlinearity_and_stuck_on", "iv_nonlinearity_cnn", "stuck_distribution",
        "stuck_off", "high_d2d", "weight_implementation", "nonideality_agnosticism")


def keys(scale, seed, names):
    """Sorted "kind training inference network key" strings of ``names`` expanded together."""
    plan = registry.expand(list(names), presets.get(scale), seed, SOURCES)
    return sorted(f"{j.kind} {j.training} {j.inference or '-'} {j.network} {j.key}" for j in plan.jobs)


def table():
    out = {}
    for scale, seed in CASES:
        case = {name: keys(scale, seed, [name]) for name in NINE}
        case["all nine"] = keys(scale, seed, NINE)
        out[f"{scale} seed {seed}"] = case
    return out


if __name__ == "__main__":
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump(table(), f, indent=0, sort_keys=True)
        f.write("\n")
