"""The single-job commands: ``train`` (one network, saved with its training record) and ``infer``
(trained weights evaluated under one inference setup).
"""
from pathlib import Path

import click

from .common import (CHECKPOINT_HELP, CONFIG_RULE, DEVICE_HELP, MAX_EPOCHS, MAX_REPEATS, Jobs, backend_option,
                     check_backend, check_data_dir, check_out, fail, interactive, not_empty, progressbar, read_json,
                     refuse_with_config, save_or_rescue, stage_for)

#: train's options that a --config file sets (refused together with --config).
TRAIN_CONFIG_OPTIONS = ("dataset", "device", "mapping_rule", "regularised", "standard_weights", "epochs",
                        "learning_rate", "validation_every", "validation_repeats", "test_device", "test_every",
                        "test_repeats", "examples")
#: infer's options that a --config file sets.
INFER_CONFIG_OPTIONS = ("device", "mapping_rule", "repeats", "sampling")


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A Training config JSON (memnp.experiments.Training fields; examples/train-*.json), or "
                   "the training.json a finished `train` wrote (to train that setup again). With it only "
                   "--out, --seed, --data-dir and --checkpoint-every may be given. " + CONFIG_RULE)
@click.option("--dataset", type=click.Choice(["mnist", "cifar10", "fashion-mnist", "mnist-10k"]), default="mnist",
              show_default=True, help="Data set (mnist falls back to the embedded subset).")
@click.option("--device", default="ideal", show_default=True, callback=not_empty, help=DEVICE_HELP)
@click.option("--mapping-rule", type=click.Choice(["default", "avg"]), default="default", show_default=True)
@click.option("--regularised", is_flag=True, help="L1 regularisation (1e-4) of the memristive layers.")
@click.option("--standard-weights", is_flag=True, help="Standard (signed) weights even on a nonideal stage.")
@click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), default=20, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=0.3, show_default=True,
              help="SGD learning rate. 0.3, as reproduce's default preset, because runs of tens of "
                   "epochs need it: at the paper's 0.01, 50 epochs of siox-high aware training stop at "
                   "about 59 % validation accuracy. Use 0.01 with --epochs 1000 for the paper's protocol "
                   "(docs/model.md §4-5).")
@click.option("--validation-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Validate after epoch 1 and every N epochs; the best validated epoch's weights are "
                   "kept, so a multiple of N as --epochs validates the last one (paper: 20).")
@click.option("--validation-repeats", type=click.IntRange(1, MAX_REPEATS), default=20, show_default=True)
@click.option("--test-device", multiple=True, callback=not_empty, help="Also evaluate the test set under this device during "
              "training (repeatable).")
@click.option("--test-every", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--test-repeats", type=click.IntRange(1, MAX_REPEATS), default=5, show_default=True)
@click.option("--examples", type=(click.IntRange(min=1), click.IntRange(min=1), click.IntRange(min=1)),
              default=None, help="Use only the first TRAIN VALIDATION TEST examples of each split.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, callback=not_empty)
@click.option("--seed", type=click.IntRange(0, 2 ** 63 - 1), default=0, show_default=True)
@click.option("--out", type=click.Path(), required=True, callback=not_empty,
              help="Directory for weights.npz and training.json.")
@click.option("--checkpoint-every", type=click.FloatRange(min=0), default=60, show_default=True, metavar="SECONDS",
              help=CHECKPOINT_HELP + " Kept in OUT/checkpoints/.")
@click.option("--group", type=Jobs(), default="auto", show_default=True,
              help="The most test-during-training repeats evaluated in one pass (an ensemble of copies of the "
                   "network, each repeat with its own seed): 'auto' (16) or N >= 1 (1: one at a time). The "
                   "numbers do not depend on it.")
@click.option("--recompute-stale", is_flag=True,
              help="Train anew when OUT holds a training.json or an in-job checkpoint of another memnp "
                   "numerics version or kernel backend (or of a memnp that recorded neither), which "
                   "otherwise stop the command before it trains.")
@backend_option
def train(config_file, dataset, device, mapping_rule, regularised, standard_weights, epochs, learning_rate,
          validation_every, validation_repeats, test_device, test_every, test_repeats, examples, data_dir,
          seed, out, checkpoint_every, group, recompute_stale):
    """Train one network and save its checkpoint.

    Writes OUT/weights.npz (loadable with memnp.nn.Sequential.load) and OUT/training.json
    (config, seed, per-epoch history, validation and test-during-training records).

    \b
    Examples:
      python run.py train --device siox-high --epochs 50 --out nets/high-aware
      python run.py train --device siox-high --regularised --test-device siox-high --out nets/high-reg
      python run.py train --config examples/train-siox-high.json --out nets/custom
      python run.py train --config nets/high-aware/training.json --seed 1 --out nets/high-aware-1

    The defaults (learning rate 0.3, 20 epochs, validation every 10) give a usable network in
    minutes; the paper trains for 1000 epochs at learning rate 0.01 and validates every 20
    (docs/model.md §4-5). An OUT holding a training.json or an in-job checkpoint of another
    numerics version or backend stops the command before it trains (see --recompute-stale).
    """
    from .. import numerics
    from ..experiments import Training, datasource, keys, protocol
    from ..experiments.checkpoint import TrainingCheckpoint
    from ..experiments.configs import DataSpec, training_config
    from ..experiments.grouping import largest
    from ..experiments.runner import check_checkpoint_every
    from ..experiments.outputs import OutputError, ResultsLocked, RunLock
    from ..experiments.stale import StaleResults, read_stamp, single_job
    from ..experiments.store import write_json, write_npz
    if config_file:
        refuse_with_config(click.get_current_context(), TRAIN_CONFIG_OPTIONS)
    check_data_dir(data_dir)
    check_backend()
    try:
        stamp = numerics.current()
        checkpoint_every = check_checkpoint_every(checkpoint_every)
        if config_file:
            training = training_config(read_json(config_file, "--config"))
        else:
            limits = dict(zip(("train", "validation", "test"), examples)) if examples else {}
            name = datasource.resolve(dataset, data_dir)
            training = Training(data=DataSpec(name=name, **limits), stage=stage_for(device, mapping_rule),
                                regularised=regularised, standard_weights=standard_weights, epochs=epochs,
                                learning_rate=learning_rate, validation_every=validation_every,
                                validation_repeats=validation_repeats,
                                test_stages=tuple(stage_for(d, mapping_rule, "--test-device") for d in test_device),
                                test_every=test_every, test_repeats=test_repeats)
            if training.memristive_checkpoint and 1 < training.epochs < training.validation_every:
                fail(f"--validation-every {validation_every} exceeds --epochs {epochs}: memristive validation would "
                     f"run after epoch 1 only and keep epoch 1's weights; give --validation-every from 1 to {epochs}")
        out = check_out(out)
        data = datasource.load(training.data, data_dir)
    except (ValueError, datasource.DataUnavailable) as exc:
        fail(str(exc))
    content = {"kind": "train", "training": training.to_dict(), "network": 0}
    key = keys.job_key(content, seed)
    checkpoint = TrainingCheckpoint(out / "checkpoints", key, checkpoint_every) if checkpoint_every > 0 else None
    lock = RunLock(out)
    try:
        lock.acquire()
    except (ResultsLocked, OutputError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        stale = single_job(stamp, read_stamp(out / "training.json"),
                           TrainingCheckpoint(out / "checkpoints", key, 0).stamp(), key)
        if stale and not recompute_stale:
            raise click.ClickException(str(StaleResults(stale, out, instead="a new --out directory")))
        if stale.checkpoints:
            TrainingCheckpoint(out / "checkpoints", key, 0).remove()
        state = checkpoint.load() if checkpoint is not None else None
        if state is not None:
            click.echo(f"resuming from the in-job checkpoint after epoch {state.epoch} of {training.epochs}")
        try:
            with progressbar(length=training.epochs, label="epochs", show_pos=True) as bar:
                record, weights = protocol.train(training, data, keys.seed_sequence(content, seed),
                                                 on_epoch=lambda e, n: bar.update(e - bar.pos), checkpoint=checkpoint,
                                                 limit=largest(group))
        except protocol.TrainingDiverged as exc:
            if checkpoint is not None:   # resuming it would diverge again
                checkpoint.remove()
            raise click.ClickException(f"{exc}; no weights were written to {out}") from None

        def save(directory):
            sha = write_npz(directory / "weights.npz", weights)
            write_json(directory / "training.json", dict(record, content=content, seed=keys.seed_record(content, seed),
                                                         **stamp.to_dict(), weights_sha256=sha))

        save_or_rescue(save, out, "train", "the trained network")
    finally:
        lock.release()
    if checkpoint is not None:
        checkpoint.remove()
        try:
            checkpoint.directory.rmdir()
        except OSError:
            pass
    ck = record["checkpoint"]
    click.echo(f"kept the weights of the best epoch: {ck['epoch']} of {training.epochs} "
               f"({ck['metric']} {_percent(ck['value'])})")
    click.echo(f"wrote {out / 'weights.npz'} and {out / 'training.json'}")


@click.command()
@click.option("--weights", "weights_file", type=click.Path(dir_okay=False, exists=True), required=True,
              help="A weights .npz written by `train` or `reproduce` (jobs/train/<key>.npz).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="An Inference config JSON (stage, repeats, sampling, batch_size; examples/infer-*.json). "
                   "With it --device, --mapping-rule, --repeats and --sampling may not be given. " + CONFIG_RULE)
@click.option("--device", default="ideal", show_default=True, callback=not_empty, help=DEVICE_HELP)
@click.option("--mapping-rule", type=click.Choice(["default", "avg"]), default="default", show_default=True)
@click.option("--repeats", type=click.IntRange(1, MAX_REPEATS), default=25, show_default=True)
@click.option("--sampling", type=click.Choice(["batch", "chip"]), default="batch", show_default=True)
@click.option("--dataset", type=click.Choice(["mnist", "cifar10", "fashion-mnist", "mnist-10k"]), default=None,
              help="Test set (default: from the network's input shape).")
@click.option("--test-examples", type=click.IntRange(min=1), default=None, help="Use the first N test examples.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, callback=not_empty)
@click.option("--seed", type=click.IntRange(0, 2 ** 63 - 1), default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, callback=not_empty,
              help="Write the record as JSON here.")
@click.option("--recompute-stale", is_flag=True,
              help="Replace a --out record of another memnp numerics version or kernel backend (or of a "
                   "memnp that recorded neither), which otherwise stops the command before it computes.")
@backend_option
def infer(weights_file, config_file, device, mapping_rule, repeats, sampling, dataset, test_examples, data_dir,
          seed, out, recompute_stale):
    """Evaluate trained weights under one inference setup: accuracy, loss and power per repeat.

    \b
    Examples:
      python run.py infer --weights nets/high-aware/weights.npz --device siox-high --repeats 25
      python run.py infer --weights nets/ideal/weights.npz --device d2d-high --sampling chip
      python run.py infer --weights results/jobs/train/<key>.npz --config examples/infer-siox-high.json --out r.json
    """
    import numpy as np
    from .. import numerics
    from ..experiments import Inference, datasource, keys, protocol
    from ..experiments.configs import DataSpec
    from ..experiments.stale import StaleResults, read_stamp, single_job
    from ..experiments.store import file_sha256, read_npz, write_json
    if config_file:
        refuse_with_config(click.get_current_context(), INFER_CONFIG_OPTIONS)
    check_data_dir(data_dir)
    check_backend()
    if out:
        out = check_out(out, directory=False)
    try:
        stamp = numerics.current()
    except ValueError as exc:
        fail(str(exc))
    stale = single_job(stamp, read_stamp(out) if out else None, key=out.name if out else "record")
    if stale and not recompute_stale:
        raise click.ClickException(str(StaleResults(stale, out, instead="another --out file")))
    try:
        inference = (Inference.from_dict(read_json(config_file, "--config")) if config_file else
                     Inference(stage=stage_for(device, mapping_rule), repeats=repeats, sampling=sampling))
        weights = read_npz(weights_file)
        _check_finite_weights(weights, weights_file)
        model = protocol.model_from_arrays(weights)
        family = dataset or ("cifar10" if tuple(model.input_shape or ()) == (32, 32, 3) else "mnist")
        spec = DataSpec(name=datasource.resolve(family, data_dir), test=test_examples)
        test = datasource.load(spec, data_dir, splits=("test",))["test"]
    except (ValueError, KeyError, OSError, datasource.DataUnavailable) as exc:
        fail(str(exc))
    content = {"kind": "infer", "weights_sha256": file_sha256(weights_file), "inference": inference.to_dict(),
               "data": spec.to_dict()}
    click.echo(f"{inference.stage.label}, {spec.name} test ({len(test[1])} examples), {inference.repeats} repeats")
    with progressbar(length=inference.repeats, label="repeats", show_pos=True, show_eta=True) as bar:
        def on_repeat(r, total, result):
            bar.update(1)
            if not interactive():   # off a terminal: one line per repeat instead of a bar
                click.echo(f"repeat {r}/{total}: error {100 * (1 - result['accuracy']):.2f} %")
        try:
            record = protocol.infer(weights, inference, test, keys.seed_sequence(content, seed), on_repeat=on_repeat)
        except ValueError as exc:
            fail(str(exc))
    error = 100 * (1 - np.asarray(record["accuracy"]))
    power = float(np.mean(record["power"]))
    efficiency = protocol.energy_efficiency(record["n_synapses"], power)
    click.echo(f"median error {np.median(error):.2f} % (IQR {np.subtract(*np.percentile(error, [75, 25])):.2f} %), "
               f"mean power {power:.4g} W" + (f", {efficiency / 1e12:.4g} TOPS/W" if efficiency else ""))
    if out:
        document = dict(record, content=content, seed=keys.seed_record(content, seed), **stamp.to_dict())
        where = save_or_rescue(lambda directory: write_json(directory / out.name, document), out.parent, "infer",
                               "the inference record")
        click.echo(f"wrote {where / out.name}")


def _check_finite_weights(weights, path):
    """A usage error naming the first parameter of ``weights`` ({name: array}) that holds NaN or inf."""
    import numpy as np
    for name, array in weights.items():
        if np.issubdtype(np.asarray(array).dtype, np.number) and not np.isfinite(array).all():
            fail(f"--weights {path}: parameter {name} holds NaN or infinite values (a diverged training?); "
                 "give the weights of a network whose parameters are all finite")


def _percent(fraction):
    """An accuracy (a fraction) as a rounded percentage, or as given if it is not a number."""
    try:
        return f"{100 * float(fraction):.2f} %"
    except (TypeError, ValueError):
        return str(fraction)
