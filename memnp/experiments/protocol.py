"""The training and inference protocol (docs/model.md §5), and the experiments' one link to :mod:`memnp.nn`.

:func:`train` trains one network from a :class:`~memnp.experiments.configs.Training` config:
per-epoch shuffling, the standard checkpoint (best validation accuracy, every epoch) for ideal
training, memristive validation (after epoch 1 and every k epochs, r repeats under the training
stage, keeping the best median accuracy) for nonideal training, the test-during-training history
for every test stage, and per-epoch training loss and accuracy.

:func:`infer` evaluates trained weights under one :class:`~memnp.experiments.configs.Inference`
setup: R repeats of the test set, each recording accuracy, loss and average power (W, the total
of the network's crossbars, averaged over batches).

Random streams: a job's SeedSequence is split into independent children (initialisation, shuffling,
training draws, augmentation, validation, test), so e.g. changing how often the test set is
evaluated does not change the training trajectory. Inference repeat r uses child r of the job's
SeedSequence, so repeat r does not depend on the number of repeats.

Sampling ``batch`` draws fresh nonidealities for every batch (the paper); ``chip`` draws once per
repeat and holds them for the whole pass: every batch of a repeat gets a Generator rebuilt from the
same seed and the model draws for every device (``draws="all"``, not only for the rows the batch
reads), so every batch sees the same devices. Read noise is fresh for every batch in both modes:
in chip mode it comes from a separate stream of the repeat (:func:`read_seed`) that goes on from
batch to batch.

Resuming: given a :class:`~memnp.experiments.checkpoint.TrainingCheckpoint`, :func:`train` saves
everything an epoch changes (parameters, SGD velocities, the best-so-far weights, the history
records, the exact state of all six random streams) and a later call continues at the next epoch
with the same numbers as an uninterrupted run.

Groups: :func:`train_group` trains K networks of one architecture and phase structure in one
pass (their steps as one :class:`memnp.nn.Ensemble` step, their validation and test passes as
ensemble passes); each network's state lives in a :class:`~memnp.experiments.members.Member`, so
its record and weights are exactly what :func:`train` gives it alone. :func:`train` is the group of
one. The evaluation passes are in :mod:`memnp.experiments.passes`.

Weights travel as a dict of arrays in the layout of :meth:`memnp.nn.Sequential.save` (JSON
``architecture`` and ``stage`` string arrays, ``layer{i}.{name}`` parameters), so a stored
weights file loads with ``memnp.nn.Sequential.load``.
"""
import json
import math
import time

import numpy as np

from .configs import Inference
from .datasource import to_float
from .device_train import device_pass, infer_repeats
from .members import TRAINING_STREAMS, Member  # noqa: F401 (TRAINING_STREAMS: the streams' names)
from .passes import (EvalTask, collect, evaluate, evaluate_many, has_wires,  # noqa: F401
                     read_seed, repeat_source, repeats, stage_structure)


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or non-finite parameters (the message gives the epoch
    and the learning rate); :func:`train` keeps no weights of such a run."""


# -- the nn link ------------------------------------------------------------------------------------
def build_model(family, weights, stage, rng, learning_rate=0.01, l1=0.0):
    """The paper's network for ``family`` (``mnist`` or ``cifar10``), initialised from ``rng``."""
    from ..nn import SGD, cifar_cnn, mnist_mlp
    options = dict(stage=stage, optimizer=SGD(lr=learning_rate), l1=l1)
    if family == "cifar10":
        return cifar_cnn(rng, weights=weights, **options)
    if family == "mnist":
        return mnist_mlp(rng, weights=weights, **options)
    raise ValueError(f"family must be 'mnist' or 'cifar10'; got {family!r}")


def model_arrays(model, stage):
    """The model's weights as {name: array} in the layout of ``Sequential.save`` (copies)."""
    arrays = {"architecture": np.array([json.dumps(model.architecture())]),
              "stage": np.array([json.dumps(None if stage is None else stage.to_dict())])}
    for key, layer, name in model.parameters():
        arrays[key] = layer.params[name].copy()
    return arrays


def set_parameters(model, arrays):
    """Copy the ``layer{i}.{name}`` arrays into the model's parameters."""
    for key, layer, name in model.parameters():
        if key not in arrays or arrays[key].shape != layer.params[name].shape:
            raise ValueError(f"weights do not fit the model: parameter {key} missing or of the wrong shape")
        layer.params[name] = np.array(arrays[key], dtype=layer.dtype)


def model_from_arrays(arrays):
    """A model rebuilt from :func:`model_arrays` output (architecture, stage and weights)."""
    from ..crossbar import Stage
    from ..nn import Sequential, layer_from_config
    try:
        architecture = json.loads(str(arrays["architecture"][0]))
        stage = json.loads(str(arrays["stage"][0]))
    except (KeyError, IndexError, json.JSONDecodeError) as exc:
        raise ValueError(f"weights arrays lack a valid architecture / stage: {exc}") from None
    layers = [layer_from_config(config) for config in architecture["layers"]]
    model = Sequential(layers, input_shape=architecture.get("input_shape"),
                       stage=None if stage is None else Stage.from_dict(stage),
                       l1=architecture.get("l1", 0.0))
    model.astype(architecture.get("dtype", "float32"))
    set_parameters(model, arrays)
    return model


def synapse_count(model):
    """N_syn = sum over memristive layers of (n_in + 1) n_out (19,885 for 784-25-10)."""
    from ..nn import synapse_count as count
    return int(count(model))


# -- training ---------------------------------------------------------------------------------------
def train(training, data, seed_sequence, on_epoch=None, checkpoint=None, initial=None, limit=1):
    """Train one network.

    training: Training config. data: {"train", "validation", "test": (images uint8, labels)} (test
    only needed when ``training.test_stages`` is not empty). seed_sequence: the job's SeedSequence.
    on_epoch: optional callback(epoch, epochs) after every epoch (after the epoch's checkpoint).
    checkpoint: optional :class:`~memnp.experiments.checkpoint.TrainingCheckpoint`. The job resumes
    from it when it holds a usable state (an unusable one is ignored), and saves to it after an
    epoch when at least ``checkpoint.every_seconds`` have passed since the start or the last save
    (never after the last epoch). A resumed job gives the same record numbers and weights as an
    uninterrupted one; only the timings differ. The caller removes the checkpoint once the result
    is stored. initial: optional weights arrays (see :func:`model_arrays`, e.g. a trained
    network's) the network starts from instead of its random initialisation (fine-tuning); they
    must fit the architecture the config builds (ValueError otherwise). The initialisation stream
    is drawn either way, so the other streams do not depend on it. limit: the largest ensemble
    the test-during-training repeats run in (1: one by one; the numbers do not depend on it).

    Returns (record, weights): the record is a JSON-ready dict (history, checkpoint, timing,
    ``resumed_from_epoch``: the epochs a checkpoint supplied, or None), the weights the
    checkpoint's arrays (see :func:`model_arrays`).
    """
    return train_group([training], [data], [seed_sequence], on_epoch,
                       None if checkpoint is None else [checkpoint], None if initial is None else [initial],
                       limit)[0]


def train_group(trainings, data, seed_sequences, on_epoch=None, checkpoints=None, initials=None, limit=None):
    """Train K networks in one pass: [(record, weights)] per network, each exactly what
    :func:`train` gives it alone (only the timings differ).

    trainings: K Training configs whose networks step together: the same architecture (family,
    weight kind), phases of the training stage, batch size and number of training examples
    (:func:`check_group`; a ValueError names the member and what differs). Their epochs may differ:
    a member leaves the pass after its last epoch. data: one {split: (images, labels)} for all, or
    K of them. seed_sequences: K SeedSequences (each member's six streams, :data:`TRAINING_STREAMS`).
    on_epoch: callback(epoch, epochs) after every epoch of the pass (epochs: the largest).
    checkpoints: None or K TrainingCheckpoints (or None entries): each member resumes from its own
    and saves its own (together, as often as the smallest ``every_seconds`` allows; never after its
    last epoch); members resumed at different epochs join the pass at their next epoch.
    initials: None or K weights arrays (or None entries) to fine-tune from. limit: the largest
    ensemble the validation and test passes run in (default K; 1: one by one).

    Each member's steps run as one :class:`memnp.nn.Ensemble` step of the members training in that
    epoch (a lone member steps its own Sequential); every draw comes from the member's own streams,
    in the order it has alone. A member's ``seconds`` (per epoch and in all) are its share (1/K) of
    the pass's wall-clock time. With the cuda backend, networks the GPU trainer supports train,
    validate and test on the device (:mod:`memnp.experiments.device_train`; the same records).
    """
    trainings = list(trainings)
    k = len(trainings)
    if k == 0:
        raise ValueError("trainings must hold at least one Training config")
    data = list(data) if isinstance(data, (list, tuple)) else [data] * k
    seed_sequences = list(seed_sequences)
    checkpoints = list(checkpoints) if checkpoints is not None else [None] * k
    initials = list(initials) if initials is not None else [None] * k
    for name, values in (("data", data), ("seed_sequences", seed_sequences), ("checkpoints", checkpoints),
                         ("initials", initials)):
        if len(values) != k:
            raise ValueError(f"{name} must hold one entry per training ({k}); got {len(values)}")
    limit = k if limit is None else limit
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit (the largest ensemble) must be an integer >= 1; got {limit!r}")
    start = time.perf_counter()
    floats = {}   # one float array per data split, shared by the members of one data set
    members = [Member(t, d, s, i, floats) for t, d, s, i in zip(trainings, data, seed_sequences, initials)]
    check_group(members)
    for member, checkpoint in zip(members, checkpoints):
        if checkpoint is not None:
            member.resume(checkpoint.load())
    saving = [c for c in checkpoints if c is not None]
    every = min((c.every_seconds for c in saving), default=None)
    last_save = time.perf_counter()
    epochs = max(m.epochs for m in members)
    stepper = _Stepper()
    device = device_pass(members, data)   # the cuda backend's device-resident pass, where it can train them
    validate, test = (_validate, _test) if device is None else (device.validate, device.test)
    for epoch in range(min(m.done for m in members) + 1, epochs + 1):
        epoch_start = time.perf_counter()
        active = [m for m in members if m.done < epoch <= m.epochs]
        if not active:   # every member has this epoch from its checkpoint, or has ended
            continue
        for member in active:
            member.start_epoch()
        if device is not None:
            device.train_epoch(active, epoch)
        else:
            _host_epoch(active, epoch, stepper)
        for member in active:
            if device is None:   # the device pass checks its weights as they come back (DevicePass.host)
                _check_finite(member.model, None, epoch, member.training)
            member.end_epoch(epoch)
        validate(active, epoch, limit)
        test(active, epoch, limit)
        share = (time.perf_counter() - epoch_start) / len(active)
        for member in active:
            member.history["seconds"].append(share)
        if every is not None and time.perf_counter() - last_save >= every:
            if device is not None:
                device.host()
            spent = (time.perf_counter() - start) / k
            for member, checkpoint in zip(members, checkpoints):
                if checkpoint is not None and member in active and epoch < member.epochs:
                    checkpoint.save(member.state(epoch, spent))
            last_save = time.perf_counter()
        if on_epoch is not None:
            on_epoch(epoch, epochs)
    if device is not None:
        device.host()
    spent = (time.perf_counter() - start) / k
    return [member.result(spent) for member in members]


def _host_epoch(active, epoch, stepper):
    """The steps of one epoch of ``active`` on the host (each member after ``start_epoch``)."""
    for begin in range(0, active[0].examples, active[0].batch_size):
        batches = [m.batch(begin) for m in active]
        try:
            losses, accuracies = stepper.step(active, batches)
        except ValueError:   # the layers' input checks refuse what non-finite weights give
            for member in active:
                _check_finite(member.model, None, epoch, member.training)
            raise
        for member, loss, acc, (_, yb) in zip(active, losses, accuracies, batches):
            _check_finite(member.model, float(loss), epoch, member.training, parameters=False)
            member.add(loss, acc, len(yb))


def _check_finite(model, loss, epoch, training, parameters=True):
    """TrainingDiverged when ``loss`` (a float, or None) is not finite or, with ``parameters``,
    when a parameter of ``model`` holds NaN or inf."""
    bad = None
    if loss is not None and not math.isfinite(loss):
        bad = f"the training loss is {loss}"
    elif parameters:
        for key, layer, name in model.parameters():
            if not np.isfinite(layer.params[name]).all():
                bad = f"parameter {key} holds NaN or infinite values"
                break
    if bad is not None:
        raise TrainingDiverged(f"training diverged in epoch {epoch} ({bad}); lower the learning rate "
                               f"(it is {training.learning_rate:g})") from None


def start_from(model, arrays):
    """Set the fresh model's parameters to ``arrays`` (a stored network's weights); ValueError
    when their architecture is not the model's."""
    try:
        architecture = json.loads(str(arrays["architecture"][0]))
    except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"initial weights lack a valid architecture: {exc}") from None
    if architecture.get("layers") != model.architecture()["layers"]:
        raise ValueError("initial weights do not fit the network this training builds (other layers, "
                         "sizes, weight kind or dtype)")
    set_parameters(model, arrays)


def check_group(members):
    """ValueError naming the first member whose network cannot step with member 0's."""
    first = members[0]
    reference = _group_shape(first)
    for index, member in enumerate(members[1:], 1):
        for what, mine, theirs in zip(_GROUP_PARTS, _group_shape(member), reference):
            if mine != theirs:
                raise ValueError(f"trainings[{index}] cannot train in one pass with trainings[0]: its {what} "
                                 f"differs ({_short(mine)} against {_short(theirs)})")


_GROUP_PARTS = ("architecture (layers, sizes, weight kind, dtype)",
                "training stage phases (and their classes) or mapping rule", "batch size",
                "number of training examples")


def _group_shape(member):
    architecture = member.model.architecture()
    return ((architecture["layers"], architecture["dtype"]), stage_structure(member.stage), member.batch_size,
            member.examples)


def _short(value, width=80):
    text = str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


class _Stepper:
    """One training step of the active members: one :class:`memnp.nn.Ensemble` step (one Ensemble
    kept per set of members), or a lone member's own ``train_step`` unless its Ensemble of one
    trains in one call (the same numbers either way)."""

    def __init__(self):
        self.ensembles = {}

    def step(self, members, batches):
        from ..nn import Ensemble
        key = tuple(id(m) for m in members)
        if key not in self.ensembles:
            ensemble = Ensemble([m.model for m in members])
            if len(members) == 1 and not ensemble.trains_in_one_call(len(batches[0][0])):
                ensemble = None         # a lone member's own step is the faster one
            self.ensembles[key] = ensemble
        if self.ensembles[key] is None:
            out = [m.model.train_step(xb, yb, rng=m.rng["train"]) for m, (xb, yb) in zip(members, batches)]
            return [o[0] for o in out], [o[1] for o in out]
        losses, accuracies = self.ensembles[key].train_step([xb for xb, _ in batches], [yb for _, yb in batches],
                                                            [m.rng["train"] for m in members])
        return list(losses), list(accuracies)


def _validate(members, epoch, limit):
    """The validation passes after ``epoch``: round r holds every member's r-th pass (a member's
    passes draw one after another from its validation stream, so they are in separate rounds)."""
    runs = {id(m): [] for m in members}
    for r in range(max(m.validation_repeats(epoch) for m in members)):
        taking = [m for m in members if m.validation_repeats(epoch) > r]
        tasks = [EvalTask(m.model, m.x_val, m.y_val, m.stage, m.rng["validation"], m.batch_size, power=False)
                 for m in taking]
        for member, result in zip(taking, evaluate_many(tasks, limit)):
            runs[id(member)].append(result)
    for member in members:
        member.keep_validation(epoch, runs[id(member)])


def _test(members, epoch, limit):
    """The test passes after ``epoch``: every repeat of every member and test stage has its own
    SeedSequence, so all of them may share ensemble passes."""
    plans = [(m, m.test_seeds(epoch)) for m in members]
    tasks, owners = [], []
    for member, plan in plans:
        for index, (inference, seqs) in enumerate(plan):
            for seq in seqs:
                tasks.append(EvalTask(member.model, member.x_test, member.y_test, inference.stage,
                                      repeat_source(inference.sampling, seq), inference.batch_size,
                                      inference.sampling))
                owners.append((id(member), index))
    results = evaluate_many(tasks, limit)
    for member, plan in plans:
        if plan:
            member.keep_tests(epoch, [collect([r for r, o in zip(results, owners) if o == (id(member), index)])
                                      for index in range(len(plan))])


def infer(weights, inference, test_data, seed_sequence, limit=1, on_repeat=None):
    """Evaluate trained weights under one inference setup.

    weights: arrays from :func:`model_arrays` (or a stored weights file). inference: Inference
    config. test_data: (images uint8, labels). seed_sequence: the job's SeedSequence.
    limit: the largest number of repeats run as one ensemble pass (copies of the network, each
    repeat with its own Generator; 1: one by one; the numbers do not depend on it). on_repeat:
    optional callback(repeat (from 1), repeats, that repeat's result dict) as repeats finish. With
    the cuda backend the repeats of a network and stage the GPU passes support run there
    (:func:`memnp.experiments.device_train.infer_repeats`), all at once.
    Returns a JSON-ready record {"accuracy", "loss", "power": R values each, "n_synapses", "seconds"}
    (and "wire_power": R values when the stage has line resistance).
    """
    if not isinstance(inference, Inference):
        raise ValueError(f"inference must be an Inference config; got {type(inference).__name__}")
    start = time.perf_counter()
    model = model_from_arrays(weights)
    n = inference.test_examples
    x, y = to_float(test_data[0][:n]), test_data[1][:n]
    seqs = seed_sequence.spawn(inference.repeats)
    result = infer_repeats(model, inference, test_data[0][:n], y, seqs)   # None unless on the GPU
    if result is not None:
        if on_repeat is not None:
            for i in range(len(seqs)):
                on_repeat(i + 1, len(seqs), {name: values[i] for name, values in result.items()})
    elif on_repeat is None:
        result = repeats(model, x, y, inference, seqs, limit)
    else:   # in ensembles of at most ``limit`` repeats, reporting each as its ensemble ends
        parts = []
        for first in range(0, len(seqs), limit):
            part = repeats(model, x, y, inference, seqs[first:first + limit], limit)
            parts.append(part)
            for i in range(len(part["accuracy"])):
                on_repeat(first + i + 1, len(seqs), {name: values[i] for name, values in part.items()})
        result = {name: [v for part in parts for v in part[name]] for name in parts[0]}
    return dict(result, n_synapses=synapse_count(model), seconds=time.perf_counter() - start)


#: docs/model.md §3: read time (s) used for the energy efficiency.
T_READ = 50e-9


def energy_efficiency(n_synapses, power):
    """Operations per joule: 2 N_syn / (t_read P) for power P (W); None if P is not positive."""
    if power is None or not np.isfinite(power) or power <= 0:
        return None
    return 2.0 * n_synapses / (T_READ * power)
