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

Weights travel as a dict of arrays in the layout of :meth:`memnp.nn.Sequential.save` (JSON
``architecture`` and ``stage`` string arrays, ``layer{i}.{name}`` parameters), so a stored
weights file loads with ``memnp.nn.Sequential.load``.
"""
import json
import math
import time

import numpy as np

from .augment import augment
from .configs import Inference, Training, evaluation_epochs
from .datasource import to_float

class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or non-finite parameters (the message gives the epoch
    and the learning rate); :func:`train` keeps no weights of such a run."""


#: Names of the independent random streams of a training job (children of its SeedSequence).
TRAINING_STREAMS = ("init", "shuffle", "train", "augment", "validation", "test")


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


# -- evaluation -------------------------------------------------------------------------------------
def evaluate(model, x, y, stage, rng, batch_size, sampling="batch", power=True):
    """One pass over (x, y): {"loss", "accuracy", "power"}.

    ``rng``: a Generator for ``batch`` sampling; for ``chip`` sampling a SeedSequence (or int) from
    which every batch's Generator is rebuilt, so each batch sees the same draws.
    """
    wires = power and has_wires(stage)
    if sampling == "batch" and not wires:
        out = model.evaluate(x, y, rng=rng, stage=stage, batch_size=batch_size, power=power)
        return {"loss": float(out["loss"]), "accuracy": float(out["accuracy"]),
                "power": None if out["power"] is None else float(out["power"])}
    if sampling not in ("batch", "chip"):
        raise ValueError(f"sampling must be 'batch' or 'chip'; got {sampling!r}")
    # Batch by batch: chip sampling rebuilds the Generator for every batch; with wires the wire
    # power of each batch is read from the layers (batch sampling: the same draws, batch after
    # batch from ``rng``, as one model.evaluate call).
    loss = hits = 0.0
    powers, wire_powers = [], []
    chip = sampling == "chip"
    read_rng = np.random.default_rng(read_seed(rng)) if chip else None
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        out = model.evaluate(xb, yb, rng=np.random.default_rng(rng) if chip else rng, stage=stage,
                             batch_size=len(xb), power=power, draws="all" if chip else "active",
                             read_rng=read_rng)
        loss += out["loss"] * len(xb)
        hits += out["accuracy"] * len(xb)
        if power:
            powers.append(out["power"])
        if wires:
            wire_powers.append(sum(layer.power_parts()["wires"] for layer in model.memristive_layers))
    result = {"loss": loss / len(x), "accuracy": hits / len(x),
              "power": float(np.mean(powers)) if power else None}
    if wires:
        result["wire_power"] = float(np.mean(wire_powers))
    return result


def has_wires(stage):
    """True when ``stage`` has a LineResistance (the "wires" phase)."""
    return stage is not None and "wires" in stage.phases


def read_seed(seed):
    """The SeedSequence of a chip's read-noise stream: a child of ``seed`` (SeedSequence or int)
    that no other stream uses (spawn key extended by 2**32 - 1), so the chip's own draws are
    unchanged by it."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + (2 ** 32 - 1,))


def _repeat_source(sampling, seed_sequence):
    """What :func:`evaluate` needs for one repeat seeded by ``seed_sequence``."""
    return np.random.default_rng(seed_sequence) if sampling == "batch" else seed_sequence


def repeats(model, x, y, inference, seed_sequences, on_repeat=None):
    """{"accuracy": [...], "loss": [...], "power": [...]} over one repeat per SeedSequence; with
    line resistance in the stage also "wire_power" [...] (W, the part of "power" the wires
    dissipate). on_repeat: optional callback(repeat (from 1), repeats, that repeat's result dict)."""
    out = {"accuracy": [], "loss": [], "power": []}
    if has_wires(inference.stage):
        out["wire_power"] = []
    for r, seq in enumerate(seed_sequences, 1):
        result = evaluate(model, x, y, inference.stage, _repeat_source(inference.sampling, seq),
                          inference.batch_size, inference.sampling)
        for name in out:
            out[name].append(result[name])
        if on_repeat is not None:
            on_repeat(r, len(seed_sequences), result)
    return out


# -- training ---------------------------------------------------------------------------------------
def train(training, data, seed_sequence, on_epoch=None, checkpoint=None, initial=None):
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
    is drawn either way, so the other streams do not depend on it.

    Returns (record, weights): the record is a JSON-ready dict (history, checkpoint, timing,
    ``resumed_from_epoch``: the epochs a checkpoint supplied, or None), the weights the
    checkpoint's arrays (see :func:`model_arrays`).
    """
    if not isinstance(training, Training):
        raise ValueError(f"training must be a Training config; got {type(training).__name__}")
    start = time.perf_counter()
    streams = dict(zip(TRAINING_STREAMS, seed_sequence.spawn(len(TRAINING_STREAMS))))
    rng = {name: np.random.default_rng(seq) for name, seq in streams.items()}
    x_train, y_train = to_float(data["train"][0]), data["train"][1]
    x_val, y_val = to_float(data["validation"][0]), data["validation"][1]
    tests = training.test_inferences()
    if tests:
        x_test, y_test = to_float(data["test"][0]), data["test"][1]
    stage = training.stage
    model = build_model(training.data.family, training.weights, stage, rng["init"],
                        training.learning_rate, training.l1 if training.regularised else 0.0)
    if initial is not None:
        _start_from(model, initial)
    memristive = training.memristive_checkpoint
    validation_epochs = set(evaluation_epochs(training.epochs, training.validation_every))
    # The test curve also gets the last epoch (the test passes draw from their own stream, so this
    # changes no other number of the job).
    test_epochs = set(evaluation_epochs(training.epochs, training.test_every)) | {training.epochs}
    history = {"epoch": [], "loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [],
               "seconds": []}
    validation = {"epoch": [], "loss": [], "accuracy": []}
    test_history = [{"stage": inf.stage.to_dict(), "label": inf.stage.label, "epoch": [], "loss": [],
                     "accuracy": [], "power": []} for inf in tests]
    best = {"epoch": None, "value": -np.inf if not memristive else 0.0, "weights": None}
    done, earlier_seconds = 0, 0.0
    if checkpoint is not None:
        state = checkpoint.load()
        if state is not None and _resume(state, training, model, rng, history, validation,
                                         test_history, best):
            done, earlier_seconds = state.epoch, state.seconds
    last_save = time.perf_counter()
    n = len(y_train)
    for epoch in range(done + 1, training.epochs + 1):
        epoch_start = time.perf_counter()
        order = rng["shuffle"].permutation(n)
        loss_sum = hit_sum = 0.0
        for begin in range(0, n, training.batch_size):
            idx = order[begin:begin + training.batch_size]
            xb = augment(x_train[idx], rng["augment"], training.augmentation)
            try:
                loss, acc = model.train_step(xb, y_train[idx], rng=rng["train"])
            except ValueError:   # the layers' input checks refuse what non-finite weights give
                _check_finite(model, None, epoch, training)
                raise
            _check_finite(model, float(loss), epoch, training, parameters=False)
            loss_sum += float(loss) * len(idx)
            hit_sum += float(acc) * len(idx)
        _check_finite(model, loss_sum, epoch, training)
        history["epoch"].append(epoch)
        history["loss"].append(loss_sum / n)
        history["accuracy"].append(hit_sum / n)
        if not memristive:
            val = evaluate(model, x_val, y_val, stage, rng["validation"], training.batch_size, power=False)
            history["val_loss"].append(val["loss"])
            history["val_accuracy"].append(val["accuracy"])
            if val["accuracy"] > best["value"]:
                best.update(epoch=epoch, value=val["accuracy"], weights=model_arrays(model, stage))
        elif epoch in validation_epochs:
            runs = [evaluate(model, x_val, y_val, stage, rng["validation"], training.batch_size,
                             power=False) for _ in range(training.validation_repeats)]
            accs = [r["accuracy"] for r in runs]
            validation["epoch"].append(epoch)
            for name in ("loss", "accuracy"):
                validation[name].append([r[name] for r in runs])
            if float(np.median(accs)) > best["value"]:
                best.update(epoch=epoch, value=float(np.median(accs)), weights=model_arrays(model, stage))
        if epoch in test_epochs:
            for inf, record in zip(tests, test_history):
                seqs = [np.random.SeedSequence(int(rng["test"].integers(2 ** 63)))
                        for _ in range(inf.repeats)]
                result = repeats(model, x_test, y_test, inf, seqs)
                record["epoch"].append(epoch)
                for name in ("loss", "accuracy", "power"):
                    record[name].append(result[name])
        history["seconds"].append(time.perf_counter() - epoch_start)
        if (checkpoint is not None and epoch < training.epochs
                and time.perf_counter() - last_save >= checkpoint.every_seconds):
            checkpoint.save(_state(epoch, model, rng, history, validation, test_history, best,
                                   earlier_seconds + time.perf_counter() - start))
            last_save = time.perf_counter()
        if on_epoch is not None:
            on_epoch(epoch, training.epochs)
    if best["weights"] is None:  # no validation ever improved on 0: keep the last weights
        best.update(epoch=training.epochs, value=None, weights=model_arrays(model, stage))
    kept = {"kind": "memristive" if memristive else "standard", "epoch": best["epoch"],
            "metric": "median validation accuracy" if memristive else "validation accuracy",
            "value": best["value"]}
    record = {"history": history, "validation": validation if memristive else None,
              "test": test_history, "checkpoint": kept, "weights": training.weights,
              "n_synapses": synapse_count(model), "resumed_from_epoch": done or None,
              "seconds": earlier_seconds + time.perf_counter() - start}
    return record, best["weights"]


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


def _start_from(model, arrays):
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


def _state(epoch, model, rng, history, validation, test_history, best, seconds):
    """A TrainingState of the running job after ``epoch`` epochs (arrays copied by the writer)."""
    from .checkpoint import TrainingState
    return TrainingState(epoch=epoch, params={key: layer.params[name] for key, layer, name in model.parameters()},
                         velocity=dict(getattr(model.optimizer, "_velocity", {})),
                         best_weights=best["weights"], history=history, validation=validation,
                         test=test_history, best_epoch=best["epoch"],
                         best_value=None if best["epoch"] is None else best["value"], seconds=seconds,
                         rng={name: generator.bit_generator.state for name, generator in rng.items()})


def _resume(state, training, model, rng, history, validation, test_history, best):
    """Restore a loaded TrainingState into the fresh job's objects (all in place); returns False,
    changing nothing, when the state does not fit this job."""
    if not 1 <= state.epoch < training.epochs or len(state.history.get("epoch", ())) != state.epoch:
        return False
    if set(state.history) != set(history) or set(state.validation) != set(validation):
        return False
    if len(state.test) != len(test_history) or any(
            set(a) != set(b) or a["label"] != b["label"] for a, b in zip(state.test, test_history)):
        return False
    expected = {key: layer.params[name] for key, layer, name in model.parameters()}
    if set(state.params) != set(expected) or any(
            state.params[k].shape != v.shape or state.params[k].dtype != v.dtype for k, v in expected.items()):
        return False
    if state.best_weights is not None and set(state.best_weights) != set(expected) | {"architecture", "stage"}:
        return False
    if set(state.rng) != set(rng):
        return False
    try:  # a state the bit generators refuse leaves the job untouched
        for name, generator in rng.items():
            type(generator.bit_generator)().state = state.rng[name]
    except (TypeError, ValueError, KeyError):
        return False
    set_parameters(model, state.params)
    velocity = getattr(model.optimizer, "_velocity", None)
    if velocity is not None:
        velocity.clear()
        velocity.update({key: np.array(value) for key, value in state.velocity.items()})
    for name, generator in rng.items():
        generator.bit_generator.state = state.rng[name]
    history.update(state.history)
    validation.update(state.validation)
    for entry, saved in zip(test_history, state.test):  # stage and label stay this job's own
        entry.update({name: saved[name] for name in ("epoch", "loss", "accuracy", "power")})
    if state.best_epoch is not None:
        best.update(epoch=state.best_epoch, value=state.best_value, weights=state.best_weights)
    return True


def infer(weights, inference, test_data, seed_sequence, on_repeat=None):
    """Evaluate trained weights under one inference setup.

    weights: arrays from :func:`model_arrays` (or a stored weights file). inference: Inference
    config. test_data: (images uint8, labels). seed_sequence: the job's SeedSequence. on_repeat:
    optional callback(repeat, repeats, result) after each repeat (see :func:`repeats`).
    Returns a JSON-ready record {"accuracy", "loss", "power": R values each, "n_synapses", "seconds"}
    (and "wire_power": R values when the stage has line resistance).
    """
    if not isinstance(inference, Inference):
        raise ValueError(f"inference must be an Inference config; got {type(inference).__name__}")
    start = time.perf_counter()
    model = model_from_arrays(weights)
    n = inference.test_examples
    x, y = to_float(test_data[0][:n]), test_data[1][:n]
    result = repeats(model, x, y, inference, seed_sequence.spawn(inference.repeats), on_repeat)
    return dict(result, n_synapses=synapse_count(model), seconds=time.perf_counter() - start)


#: docs/model.md §3: read time (s) used for the energy efficiency.
T_READ = 50e-9


def energy_efficiency(n_synapses, power):
    """Operations per joule: 2 N_syn / (t_read P) for power P (W); None if P is not positive."""
    if power is None or not np.isfinite(power) or power <= 0:
        return None
    return 2.0 * n_synapses / (T_READ * power)
