"""Which training jobs train together in one pass (``--group``).

Training jobs can share a pass (:func:`memnp.experiments.protocol.train_group`) when their steps
line up: the same network (data family, weight kind, so the same layers; float32), the same
training-stage structure (each phase held by the same nonideality class, the same mapping
rule), the same data (so the same number of training examples), batch size, augmentation and
number of epochs. Every number may differ: device parameters, learning rate, L1, seeds. Those
are the jobs of one :func:`signature`. At paper scale these are the five networks of a setup,
and the setups of one architecture and phase structure (e.g. low-R and high-R PF, with and
without L1).

``--group``: ``auto`` (:data:`AUTO_GROUP` networks per pass at most; with several worker
processes, groups are split until every worker has one, so grouping never leaves a worker idle)
or N >= 1 (N at most; 1: one network per pass). A signature's n jobs are split into
ceil(n / N) groups of sizes that differ by at most one, in plan order. The grouping changes no
number: each network's record and weights are what it gets alone.
"""
import math

from .configs import Training, canonical_json
from .passes import stage_structure

#: The most networks ``--group auto`` trains in one pass (and runs in one evaluation pass).
AUTO_GROUP = 16


def check_group_size(value):
    """``"auto"`` or an integer >= 1 (a string of digits is read as one); ValueError naming
    ``--group`` and the allowed values otherwise."""
    if value == "auto":
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"group (--group) must be 'auto' or an integer >= 1 (the most networks per pass; "
                         f"1: one at a time); got {value!r}")
    return value


def largest(group):
    """The most networks per pass that ``group`` (see :func:`check_group_size`) allows."""
    group = check_group_size(group)
    return AUTO_GROUP if group == "auto" else group


def signature(config):
    """What the training jobs of one pass share (a hashable value), from a Training config or its
    dict."""
    training = config if isinstance(config, Training) else Training.from_dict(config)
    return canonical_json({"family": training.data.family, "weights": training.weights,
                           "stage": [list(map(list, stage_structure(training.stage)[0])),
                                     stage_structure(training.stage)[1]],
                           "data": training.data.to_dict(), "batch_size": training.batch_size,
                           "augment": training.augmentation, "epochs": training.epochs})


def form_groups(jobs, configs, group="auto", workers=1):
    """[[job, ...], ...]: ``jobs`` (training jobs, in plan order) split into the groups that train
    together. configs: {training setup name: Training dict} (``job.training`` names the setup).
    workers: how many units of work run at once (``auto`` splits groups until each has one)."""
    size = largest(group)
    buckets = {}
    for job in jobs:
        buckets.setdefault(signature(configs[job.training]), []).append(job)
    groups = []
    for bucket in buckets.values():
        groups.extend(_split(bucket, math.ceil(len(bucket) / size)))
    if group == "auto":
        while len(groups) < workers and any(len(g) > 1 for g in groups):
            biggest = max(range(len(groups)), key=lambda i: len(groups[i]))
            groups[biggest:biggest + 1] = _split(groups[biggest], 2)
    return groups


def _split(items, parts):
    """``items`` in ``parts`` consecutive runs whose lengths differ by at most one."""
    base, extra = divmod(len(items), parts)
    out, begin = [], 0
    for i in range(parts):
        end = begin + base + (i < extra)
        out.append(items[begin:end])
        begin = end
    return out
