"""Write tests/data/paper_job_keys.json: every job key of the paper's nine simulations.

Run it from a checkout of the main branch (before the new simulations) so that the file pins the
keys the paper mode must keep:  PYTHONPATH=/path/to/main python tests/data/make_paper_job_keys.py OUT
"""
import json
import sys

from memnp.experiments import presets, registry

SOURCES = {"mnist": "mnist-10k", "cifar10": "cifar10"}
#: (scale, run seed) pairs pinned.
CASES = (("tiny", 0), ("default", 0), ("paper", 3))
PAPER_SIMULATIONS = ("ideal", "iv_nonlinearity", "iv_nonlinearity_and_stuck_on", "iv_nonlinearity_cnn",
                     "stuck_distribution", "stuck_off", "high_d2d", "weight_implementation",
                     "nonideality_agnosticism")


def job_keys(scale_name, seed, simulation):
    """Sorted "kind:training:inference:network:key" strings of one simulation expanded alone."""
    plan = registry.expand([simulation], presets.get(scale_name), seed, SOURCES)
    return sorted(f"{j.kind}:{j.training}:{j.inference or ''}:{j.network}:{j.key}" for j in plan.jobs)


def main(path):
    out = {f"{scale}/seed={seed}": {name: job_keys(scale, seed, name) for name in PAPER_SIMULATIONS}
           for scale, seed in CASES}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=0, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
