"""memnp's command line (click). ``run.py`` calls :func:`main`; ``import memnp`` never imports this.

Commands: ``reproduce`` (the paper's simulations, report and figures), ``train`` and ``infer`` (one
setup), ``report`` and ``figures`` (redrawn from a results directory), ``fit-device`` (a PF
preset from I-V curves) and ``bench`` (the benchmarks in bench/).
"""
import json
import sys
from pathlib import Path

import click

from .experiments import presets as scale_presets
from .experiments import registry

DEFAULT_OUT = "results"
CHECKPOINT_HELP = ("Save a training job's state at most every SECONDS (after an epoch) so that a killed "
                   "run resumes it from there; 0 turns it off.")


class _Bars:
    """Progress bars: one over jobs; in this process, one over the epochs of each training job."""

    def __init__(self, show_epochs):
        self.show_epochs = show_epochs
        self.jobs_bar = None
        self.epoch_bar = None

    def message(self, text):
        click.echo(text)

    def jobs_start(self, total, finished):
        if finished:
            click.echo(f"{finished} of {total} jobs already finished in this results directory (reused)")
        self.jobs_bar = click.progressbar(length=total, label="jobs", show_pos=True, show_eta=True)
        self.jobs_bar.__enter__()
        self.jobs_bar.update(finished)

    def epoch(self, job, epoch, epochs):
        if not self.show_epochs:
            return
        if self.epoch_bar is None:
            self.epoch_bar = click.progressbar(length=epochs, label=f"  train {job.describe()}: epochs",
                                               show_pos=True)
            self.epoch_bar.__enter__()
        self.epoch_bar.update(epoch - self.epoch_bar.pos)  # a resumed job starts past epoch 1
        if epoch == epochs:
            self.epoch_bar.__exit__(None, None, None)
            self.epoch_bar = None

    def job_done(self, job):
        if self.jobs_bar is not None:
            self.jobs_bar.update(1)

    def close(self):
        for bar in (self.epoch_bar, self.jobs_bar):
            if bar is not None:
                bar.__exit__(None, None, None)
        self.epoch_bar = self.jobs_bar = None


class _Jobs(click.ParamType):
    """An integer >= 1 or 'auto'."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        if value == "auto" or (isinstance(value, int) and value >= 1):
            return value
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            self.fail(f"{value!r} is not an integer >= 1 or 'auto'", param, ctx)
        return number


def _usable_cores():
    import os
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _fail(message):
    """A clear one-line error and exit status 2, like click's own usage errors."""
    raise click.UsageError(message)


def _draw_figures(results, figures_dir=None, data_dir=None, only=None):
    """Call memnp.plotting if it is importable; returns (figures dir or None, note)."""
    try:
        from . import plotting
        draw_all = plotting.draw_all
    except (ImportError, AttributeError) as exc:
        return None, f"figures not drawn: memnp.plotting is not available ({exc})"
    figures_dir = Path(figures_dir) if figures_dir else Path(results) / "figures"
    drawn = draw_all(results, figures_dir, data_dir, only=only)
    note = f"{len(drawn)} figure files written"
    if drawn.skipped:
        note += f", {len(drawn.skipped)} figures skipped:" + "".join(
            f"\n  skipped {name}: {reason}" for name, reason in drawn.skipped.items())
    return figures_dir, note


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """memnp: simulate and train memristive neural networks, and reproduce Joksas et al. (2022).

    \b
    Examples:
      python run.py                                  # reproduce, default preset, into ./results
      python run.py reproduce --preset tiny --out /tmp/memnp-tiny
      python run.py reproduce --only iv_nonlinearity --epochs 20 --jobs 1
      python run.py figures --results results
    """


# -- reproduce ------------------------------------------------------------------------------------
@cli.command()
@click.option("--preset", type=click.Choice(list(scale_presets.PRESETS)), default="default", show_default=True,
              help="Run scale: tiny (seconds), default (minutes on 2 cores), paper (SPEC §5: 1000 epochs, "
                   "5 networks, 25 repeats).")
@click.option("--only", "only", multiple=True, type=click.Choice(list(registry.SIMULATIONS)),
              help="Run only this simulation (repeatable). Default: all nine.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Data directory (default $MEMNP_DATA or ~/.cache/memnp). MNIST falls back to the "
                   "embedded 10k subset; CIFAR-10 experiments are skipped when it is absent.")
@click.option("--download/--no-download", default=False, show_default=True,
              help="Download missing data sets from the public mirrors.")
@click.option("--out", type=click.Path(), default=DEFAULT_OUT, show_default=True,
              help="Results directory (created; reruns resume in it).")
@click.option("--seed", type=click.IntRange(0, 2 ** 63 - 1), default=0, show_default=True, help="Run seed.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the preset's epochs.")
@click.option("--repeats", type=click.IntRange(min=1), default=None,
              help="Override the preset's inference repeats (also caps validation/test repeats).")
@click.option("--networks", type=click.IntRange(min=1), default=None,
              help="Override the number of networks trained per setup.")
@click.option("--sampling", type=click.Choice(["batch", "chip"]), default=None,
              help="batch: fresh draws every batch (paper); chip: one draw per repeat.")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override the preset's SGD learning rate (paper: 0.01; default preset: 0.3).")
@click.option("--jobs", type=_Jobs(), default="auto", show_default=True,
              help="Local worker processes, or 'auto': one per usable core. Any value gives identical "
                   "numbers; with 1 the jobs run in this process and show per-epoch progress.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on a Dask distributed scheduler, e.g. tcp://10.0.0.5:8786 (pip install "
                   "'memnp[distributed]'); results are written by this client.")
@click.option("--figures/--no-figures", default=True, show_default=True, help="Draw the figures at the end.")
@click.option("--checkpoint-every", type=click.FloatRange(min=0), default=60, show_default=True, metavar="SECONDS",
              help=CHECKPOINT_HELP + " Not with --scheduler (Dask jobs restart from epoch 1).")
def reproduce(preset, only, data_dir, download, out, seed, epochs, repeats, networks, sampling, learning_rate,
              jobs, scheduler, figures, checkpoint_every):
    """Run the paper's simulations, then write the report and figures.

    \b
    Examples:
      python run.py reproduce                              # default preset into ./results
      python run.py reproduce --preset tiny --out /tmp/tiny
      python run.py reproduce --only stuck_off --only high_d2d --epochs 30
      python run.py reproduce --preset paper --jobs 8 --out paper-results
      python run.py reproduce --preset paper --scheduler tcp://head-node:8786

    Rerunning with the same options skips finished jobs (a killed run resumes, and a training job
    killed mid-way continues from its last checkpoint); any change of configuration or seed
    computes new jobs and never reuses stale results.
    """
    from .experiments import runner
    from .experiments.report import write_report
    if scheduler is not None and jobs != "auto":
        _fail("give either --jobs or --scheduler, not both")
    jobs = _usable_cores() if jobs == "auto" else jobs
    if scheduler is not None and not _valid_address(scheduler):
        _fail(f"--scheduler must be an address like tcp://HOST:PORT or HOST:PORT; got {scheduler!r}")
    names = list(only) or list(registry.SIMULATIONS)
    try:
        scale = scale_presets.get(preset).override(epochs, repeats, networks, sampling, learning_rate)
        bars = _Bars(show_epochs=jobs == 1 and scheduler is None)
        result = runner.reproduce(names, scale, seed, out, data_dir=data_dir, download=download, jobs=jobs,
                                  scheduler=scheduler, preset=preset, progress=bars,
                                  checkpoint_every=checkpoint_every)
    except (ValueError, ImportError, ConnectionError) as exc:
        _fail(str(exc))
    except RuntimeError as exc:
        raise click.ClickException(f"{exc}\nFinished jobs are kept in {out}; rerun the same command to "
                                   "resume.") from None
    report = write_report(out)
    click.echo(f"{len(result.computed)} jobs computed, {len(result.reused)} reused, "
               f"in {result.seconds:.1f} s")
    click.echo(f"results: {Path(out).resolve()} (manifest.json, jobs/)")
    click.echo(f"report: {report['summary.md'].resolve()}")
    if figures:
        figures_dir, note = _draw_figures(out, data_dir=data_dir)
        click.echo(f"figures: {figures_dir.resolve()} ({note})" if figures_dir else note)


def _valid_address(address):
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rpartition(":")
    return bool(host) and port.isdigit()


# -- train / infer ----------------------------------------------------------------------------------
def _stage(device, mapping_rule):
    """A Stage from a preset name, a preset file or 'ideal'."""
    if device == "ideal":
        return registry.device_stage("ideal", mapping_rule)
    from .data.presets import preset_stage
    import dataclasses
    stage = preset_stage(device)
    return dataclasses.replace(stage, mapping_rule=mapping_rule) if mapping_rule else stage


def _read_json(path, what):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        _fail(f"{what} {path} is not a readable JSON file: {exc}")


DEVICE_HELP = "Device: 'ideal', a preset name (siox-low, siox-high, stuck-off, siox-high-stuck-on, " \
              "d2d-more-uniform, d2d-less-uniform, d2d-high, tahfo2) or a preset JSON file."


@cli.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A Training config JSON (see memnp.experiments.Training); other options are ignored.")
@click.option("--dataset", type=click.Choice(["mnist", "cifar10", "fashion-mnist", "mnist-10k"]), default="mnist",
              show_default=True, help="Data set (mnist falls back to the embedded subset).")
@click.option("--device", default="ideal", show_default=True, help=DEVICE_HELP)
@click.option("--mapping-rule", type=click.Choice(["default", "avg"]), default="default", show_default=True)
@click.option("--regularised", is_flag=True, help="L1 regularisation (1e-4) of the memristive layers.")
@click.option("--standard-weights", is_flag=True, help="Standard (signed) weights even on a nonideal stage.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True)
@click.option("--validation-every", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--validation-repeats", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--test-device", multiple=True, help="Also evaluate the test set under this device during "
              "training (repeatable).")
@click.option("--test-every", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--test-repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--examples", type=(click.IntRange(min=1), click.IntRange(min=1), click.IntRange(min=1)),
              default=None, help="Use only the first TRAIN VALIDATION TEST examples of each split.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--seed", type=click.IntRange(0, 2 ** 63 - 1), default=0, show_default=True)
@click.option("--out", type=click.Path(), required=True, help="Directory for weights.npz and training.json.")
@click.option("--checkpoint-every", type=click.FloatRange(min=0), default=60, show_default=True, metavar="SECONDS",
              help=CHECKPOINT_HELP + " Kept in OUT/checkpoints/.")
def train(config_file, dataset, device, mapping_rule, regularised, standard_weights, epochs, learning_rate,
          validation_every, validation_repeats, test_device, test_every, test_repeats, examples, data_dir,
          seed, out, checkpoint_every):
    """Train one network and save its checkpoint.

    Writes OUT/weights.npz (loadable with memnp.nn.Sequential.load) and OUT/training.json
    (config, seed, per-epoch history, validation and test-during-training records).

    \b
    Examples:
      python run.py train --device siox-high --epochs 50 --out nets/high-aware
      python run.py train --device siox-high --regularised --test-device siox-high --out nets/high-reg
      python run.py train --config training.json --out nets/custom
    """
    from .experiments import Training, datasource, keys, protocol
    from .experiments.checkpoint import TrainingCheckpoint
    from .experiments.configs import DataSpec
    from .experiments.runner import check_checkpoint_every
    from .experiments.store import write_json, write_npz
    try:
        checkpoint_every = check_checkpoint_every(checkpoint_every)
        if config_file:
            training = Training.from_dict(_read_json(config_file, "--config"))
        else:
            limits = dict(zip(("train", "validation", "test"), examples)) if examples else {}
            name = datasource.resolve(dataset, data_dir)
            training = Training(data=DataSpec(name=name, **limits), stage=_stage(device, mapping_rule),
                                regularised=regularised, standard_weights=standard_weights, epochs=epochs,
                                learning_rate=learning_rate, validation_every=validation_every,
                                validation_repeats=validation_repeats,
                                test_stages=tuple(_stage(d, mapping_rule) for d in test_device),
                                test_every=test_every, test_repeats=test_repeats)
        out = Path(out)
        if out.exists() and not out.is_dir():
            _fail(f"--out {out} exists and is not a directory")
        data = datasource.load(training.data, data_dir)
    except (ValueError, datasource.DataUnavailable) as exc:
        _fail(str(exc))
    content = {"kind": "train", "training": training.to_dict(), "network": 0}
    checkpoint = (TrainingCheckpoint(out / "checkpoints", keys.job_key(content, seed), checkpoint_every)
                  if checkpoint_every > 0 else None)
    with click.progressbar(length=training.epochs, label="epochs", show_pos=True) as bar:
        record, weights = protocol.train(training, data, keys.seed_sequence(content, seed),
                                         on_epoch=lambda e, n: bar.update(e - bar.pos), checkpoint=checkpoint)
    sha = write_npz(out / "weights.npz", weights)
    write_json(out / "training.json", dict(record, content=content, seed=keys.seed_record(content, seed),
                                           weights_sha256=sha))
    if checkpoint is not None:
        checkpoint.remove()
        try:
            checkpoint.directory.rmdir()
        except OSError:
            pass
    if record["resumed_from_epoch"]:
        click.echo(f"resumed from the checkpoint after epoch {record['resumed_from_epoch']}")
    ck = record["checkpoint"]
    click.echo(f"checkpoint: epoch {ck['epoch']} ({ck['metric']} {ck['value']})")
    click.echo(f"wrote {out / 'weights.npz'} and {out / 'training.json'}")


@cli.command()
@click.option("--weights", "weights_file", type=click.Path(dir_okay=False, exists=True), required=True,
              help="A weights .npz written by `train` or `reproduce` (jobs/train/<key>.npz).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="An Inference config JSON (stage, repeats, sampling, batch_size).")
@click.option("--device", default="ideal", show_default=True, help=DEVICE_HELP)
@click.option("--mapping-rule", type=click.Choice(["default", "avg"]), default="default", show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--sampling", type=click.Choice(["batch", "chip"]), default="batch", show_default=True)
@click.option("--dataset", type=click.Choice(["mnist", "cifar10", "fashion-mnist", "mnist-10k"]), default=None,
              help="Test set (default: from the network's input shape).")
@click.option("--test-examples", type=click.IntRange(min=1), default=None, help="Use the first N test examples.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--seed", type=click.IntRange(0, 2 ** 63 - 1), default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the record as JSON here.")
def infer(weights_file, config_file, device, mapping_rule, repeats, sampling, dataset, test_examples, data_dir,
          seed, out):
    """Evaluate trained weights under one inference setup: accuracy, loss and power per repeat.

    \b
    Examples:
      python run.py infer --weights nets/high-aware/weights.npz --device siox-high --repeats 25
      python run.py infer --weights nets/ideal/weights.npz --device d2d-high --sampling chip
      python run.py infer --weights results/jobs/train/<key>.npz --config inference.json --out r.json
    """
    import numpy as np
    from .experiments import Inference, datasource, keys, protocol
    from .experiments.configs import DataSpec
    from .experiments.store import file_sha256, read_npz, write_json
    try:
        inference = (Inference.from_dict(_read_json(config_file, "--config")) if config_file else
                     Inference(stage=_stage(device, mapping_rule), repeats=repeats, sampling=sampling))
        weights = read_npz(weights_file)
        model = protocol.model_from_arrays(weights)
        family = dataset or ("cifar10" if tuple(model.input_shape or ()) == (32, 32, 3) else "mnist")
        spec = DataSpec(name=datasource.resolve(family, data_dir), test=test_examples)
        test = datasource.load(spec, data_dir, splits=("test",))["test"]
    except (ValueError, KeyError, OSError, datasource.DataUnavailable) as exc:
        _fail(str(exc))
    content = {"kind": "infer", "weights_sha256": file_sha256(weights_file), "inference": inference.to_dict(),
               "data": spec.to_dict()}
    record = protocol.infer(weights, inference, test, keys.seed_sequence(content, seed))
    error = 100 * (1 - np.asarray(record["accuracy"]))
    power = float(np.mean(record["power"]))
    efficiency = protocol.energy_efficiency(record["n_synapses"], power)
    click.echo(f"{inference.stage.label}, {spec.name} test ({len(test[1])} examples), {inference.repeats} repeats")
    click.echo(f"median error {np.median(error):.2f} % (IQR {np.subtract(*np.percentile(error, [75, 25])):.2f} %), "
               f"mean power {power:.4g} W" + (f", {efficiency / 1e12:.4g} TOPS/W" if efficiency else ""))
    if out:
        write_json(out, dict(record, content=content, seed=keys.seed_record(content, seed)))
        click.echo(f"wrote {out}")


# -- report / figures -------------------------------------------------------------------------------
@cli.command()
@click.option("--results", type=click.Path(file_okay=False, exists=True), default=DEFAULT_OUT, show_default=True)
def report(results):
    """Rewrite the markdown and CSV summary of a results directory (from its files alone).

    \b
    Example:
      python run.py report --results results
    """
    from .experiments.report import write_report
    try:
        paths = write_report(results)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for path in paths.values():
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--results", type=click.Path(file_okay=False), default=DEFAULT_OUT, show_default=True,
              help="A results directory written by `reproduce`.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Figures directory (default RESULTS/figures).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Data directory with the measured device data (for the device figures).")
@click.option("--only", multiple=True, help="Draw only this figure (repeatable).")
def figures(results, out, data_dir, only):
    """Draw the figures (PNG and PDF) from a results directory, without rerunning anything.

    \b
    Examples:
      python run.py figures                       # from ./results into ./results/figures
      python run.py figures --results /tmp/tiny --out /tmp/tiny-figures
    """
    try:
        figures_dir, note = _draw_figures(results, out, data_dir, list(only) or None)
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"figures: {figures_dir.resolve()} ({note})" if figures_dir else note)


# -- fit-device -------------------------------------------------------------------------------------
@cli.command("fit-device")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--regime", type=click.Choice(["low", "high", "both"]), default="both", show_default=True,
              help="Resistance regime(s) to save (split at the conductance quantum).")
@click.option("--out", type=click.Path(), default=None,
              help="Preset JSON path (with --regime both: a directory, or a prefix). Default: next to FILE.")
@click.option("--name", default=None, help="Preset name (default: FILE's stem and the regime).")
@click.option("--k-v", "k_V", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True,
              help="Voltage scaling factor k_V (V).")
def fit_device(file, regime, out, name, k_V):
    """Fit the Poole-Frenkel model to measured I-V curves and save device presets (JSON).

    FILE is a MATLAB file in the SiOx multistate layout (variable `data`, (point, channel, state);
    channel 0 current in A, channel 1 voltage in V) or an .npz with arrays V and I of shape
    (curves, points), voltages from 0 V in 5 mV steps. The presets can be given to
    `train --device` and `infer --device`.

    \b
    Examples:
      python run.py fit-device SiO_x-multistate-data.mat
      python run.py fit-device my-curves.npz --regime high --out my-device.json
    """
    from .data.devices import fit_siox, load_siox_mat
    from .data.presets import preset_from_fit, save_preset
    path = Path(file)
    try:
        if path.suffix.lower() == ".npz":
            import numpy as np
            with np.load(path, allow_pickle=False) as data:
                if "V" not in data.files or "I" not in data.files:
                    _fail(f"{path} must hold arrays named V and I (curves, points)")
                V, I = data["V"], data["I"]
        else:
            V, I = load_siox_mat(path)
        fit = fit_siox(V, I)
        regimes = ["low", "high"] if regime == "both" else [regime]
        targets = []
        for reg in regimes:
            preset_name = (name + (f"-{reg}" if regime == "both" else "")) if name else f"{path.stem}-{reg}"
            if out is None:
                target = path.with_name(f"{preset_name}.json")
            elif regime == "both" or Path(out).is_dir():
                target = Path(out) / f"{preset_name}.json" if Path(out).is_dir() else Path(f"{out}-{reg}.json")
            else:
                target = Path(out)
            targets.append((reg, preset_name, target))
        records = [(preset_from_fit(fit, reg, name=preset_name, k_V=k_V,
                                    description=f"PF fit of {path.name}, {reg}-resistance regime",
                                    source=f"fitted by memnp fit-device from {path.name}"), target)
                   for reg, preset_name, target in targets]
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"{len(fit.R)} curves fitted ({len(fit.dropped)} dropped)")
    for record, target in records:
        save_preset(record, target)
        stage = record.stage
        pf = stage["nonidealities"][0]
        click.echo(f"{record.name}: G_off {stage['G_off']:.6g} S, G_on {stage['G_on']:.6g} S, slopes "
                   f"{pf['slopes']}, intercepts {pf['intercepts']} -> {target}")


# -- bench ------------------------------------------------------------------------------------------
def _bench_dir():
    return Path(__file__).resolve().parents[1] / "bench"


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("names", nargs=-1)
@click.option("--list", "list_only", is_flag=True, help="List the benchmarks and exit.")
def bench(names, list_only):
    """Run benchmark scripts from bench/ (a source checkout), each in its own process.

    \b
    Examples:
      python run.py bench --list
      python run.py bench kernels epoch
      python run.py bench reproduce
    Without NAMES every benchmark runs (this takes a while). Results: see bench/RESULTS.md.
    """
    import subprocess
    directory = _bench_dir()
    if not directory.is_dir():
        _fail(f"{directory} not found: the benchmarks ship with the source checkout, not the installed package")
    available = sorted(p.stem for p in directory.glob("*.py") if p.stem != "common" and not p.stem.startswith("_"))
    if list_only:
        click.echo("\n".join(available))
        return
    unknown = [n for n in names if n not in available]
    if unknown:
        _fail(f"unknown benchmark {unknown[0]!r}; available: {', '.join(available)}")
    for name in names or available:
        click.echo(f"== bench/{name}.py")
        status = subprocess.call([sys.executable, str(directory / f"{name}.py")])
        if status:
            raise click.ClickException(f"bench/{name}.py exited with status {status}")


def arguments(argv):
    """The command line with ``reproduce`` put first when no command is given."""
    args = list(argv)
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        args = ["reproduce"] + args
    return args


def main(argv=None):
    """Entry point: ``python run.py [COMMAND] [OPTIONS]``; no command (or only options) runs
    ``reproduce``."""
    return cli.main(args=arguments(sys.argv[1:] if argv is None else argv), prog_name="run.py")
