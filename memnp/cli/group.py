"""memnp's command line (click): the group and the commands that work on a whole run. ``run.py``
calls :func:`main`; ``import memnp`` never imports this.

Commands: ``reproduce`` (the paper's simulations, report and figures), ``report`` and ``figures``
(redrawn from a results directory) and ``bench`` (the benchmarks in bench/) are here; ``train`` and
``infer`` (one setup) are in jobs.py, ``fit-device`` (a PF preset from I-V curves) in devices.py.
"""
import contextlib
import sys
from pathlib import Path

import click

from ..experiments import presets as scale_presets
from ..experiments import registry
from .common import (CHECKPOINT_HELP, DEFAULT_OUT, GROUP_HELP, MAX_EPOCHS, MAX_NETWORKS, MAX_REPEATS,
                     PARTIAL_HELP, RECOMPUTE_STALE_HELP, Bars, Jobs, backend_option, check_backend, check_data_dir,
                     check_out, draw_figures, fail, not_empty, usable_cores, valid_address)
from .devices import fit_device
from .jobs import infer, train


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
              help="Run scale: tiny (seconds), default (minutes on 2 cores), paper (docs/model.md §5: 1000 epochs, "
                   "5 networks, 25 repeats).")
@click.option("--only", "only", multiple=True, type=click.Choice(list(registry.SIMULATIONS)),
              help="Run only this simulation (repeatable). Default: all (the paper's nine, then "
                   "combined, drift and adc; line_resistance, slow, only by name or with --preset paper).")
@click.option("--device-file", "device_files", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="A preset JSON file (e.g. fit-device output, or a built-in preset saved and edited) "
                   "named like a preset the simulations use (e.g. siox-high-chip): it replaces that "
                   "preset in every setup of this run (repeatable).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, callback=not_empty,
              help="Data directory (default $MEMNP_DATA or ~/.cache/memnp). MNIST falls back to the "
                   "embedded 10k subset; CIFAR-10 experiments are skipped when it is absent.")
@click.option("--download/--no-download", default=False, show_default=True,
              help="Download missing data sets from the public mirrors.")
@click.option("--out", type=click.Path(), default=DEFAULT_OUT, show_default=True, callback=not_empty,
              help="Results directory (created; reruns resume in it). One run at a time: a second run "
                   "into a directory in use stops at once, naming the other run's PID.")
@click.option("--seed", type=click.IntRange(0, 2 ** 63 - 1), default=0, show_default=True, help="Run seed.")
@click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), default=None, help="Override the preset's epochs.")
@click.option("--repeats", type=click.IntRange(1, MAX_REPEATS), default=None,
              help="Override the preset's inference repeats (also caps validation/test repeats).")
@click.option("--networks", type=click.IntRange(1, MAX_NETWORKS), default=None,
              help="Override the number of networks trained per setup.")
@click.option("--sampling", type=click.Choice(["batch", "chip"]), default=None,
              help="batch: fresh draws every batch (paper); chip: one draw per repeat.")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override the preset's SGD learning rate (paper: 0.01; default preset: 0.3).")
@click.option("--jobs", type=Jobs(), default="auto", show_default=True,
              help="Local worker processes, or 'auto': one per usable core. Any value gives identical "
                   "numbers; with 1 the jobs run in this process and show per-epoch progress.")
@click.option("--group", type=Jobs(), default="auto", show_default=True, help=GROUP_HELP)
@click.option("--scheduler", default=None, metavar="ADDRESS", callback=not_empty,
              help="Run on a Dask distributed scheduler, e.g. tcp://10.0.0.5:8786 (pip install "
                   "'memnp[distributed]'); results are written by this client.")
@click.option("--figures/--no-figures", default=True, show_default=True, help="Draw the figures at the end.")
@click.option("--partial", is_flag=True, help=PARTIAL_HELP)
@click.option("--checkpoint-every", type=click.FloatRange(min=0), default=60, show_default=True, metavar="SECONDS",
              help=CHECKPOINT_HELP + " Not with --scheduler (Dask jobs restart from epoch 1).")
@click.option("--recompute-stale", is_flag=True,
              help=RECOMPUTE_STALE_HELP + " Jobs that depend on a recomputed network are recomputed too.")
@backend_option
def reproduce(preset, only, device_files, data_dir, download, out, seed, epochs, repeats, networks, sampling,
              learning_rate, jobs, group, scheduler, figures, checkpoint_every, partial, recompute_stale):
    """Run the paper's simulations, then write the report and figures.

    \b
    Examples:
      python run.py reproduce                              # default preset into ./results
      python run.py reproduce --preset tiny --out /tmp/tiny
      python run.py reproduce --only stuck_off --only high_d2d --epochs 30
      python run.py reproduce --preset paper --jobs 8 --out paper-results
      python run.py reproduce --preset paper --scheduler tcp://head-node:8786
      python run.py reproduce --backend cuda --out results-cuda

    Rerunning with the same options skips finished jobs (a killed run resumes, and a training job
    killed mid-way continues from its last checkpoint); any change of configuration or seed
    computes new jobs and never reuses stale results. Results of another numerics version or
    backend stop the run before it computes anything (see --recompute-stale).

    The report and figures describe every simulation of the results directory (not only those
    run now); report and figure files of simulations no longer in it are removed. A simulation
    named with --only that cannot run (its data set absent) makes the exit status 1, after the
    rest has run and been saved.
    """
    from ..experiments import runner
    from ..experiments.outputs import OutputError, ResultsLocked, RunLock
    from ..experiments.report import write_report
    from ..experiments.stale import StaleResults
    from ..experiments.verify import IncompleteResults
    if scheduler is not None and jobs != "auto":
        fail("give either --jobs or --scheduler, not both")
    source = click.get_current_context().get_parameter_source("checkpoint_every")
    if scheduler is not None and source == click.core.ParameterSource.COMMANDLINE:
        fail("--checkpoint-every does not work with --scheduler (Dask jobs keep no checkpoints and restart "
             "from epoch 1); leave it out")
    check_data_dir(data_dir, download)
    check_backend()
    jobs = usable_cores() if jobs == "auto" else jobs
    if scheduler is not None and not valid_address(scheduler):
        fail(f"--scheduler must be an address like tcp://HOST:PORT or HOST:PORT; got {scheduler!r}")
    names = list(only) or registry.default_names(preset)
    lock = RunLock(out)   # taken by the runner once the input is valid; held here until the figures are drawn
    try:
        try:
            scale = scale_presets.get(preset).override(epochs, repeats, networks, sampling, learning_rate)
            bars = Bars(show_epochs=jobs == 1 and scheduler is None)
            result = runner.reproduce(names, scale, seed, out, data_dir=data_dir, download=download, jobs=jobs,
                                      scheduler=scheduler, preset=preset, progress=bars,
                                      checkpoint_every=checkpoint_every, lock=lock,
                                      devices=list(device_files), recompute_stale=recompute_stale, group=group)
        except (OutputError, ResultsLocked, StaleResults) as exc:  # before their bases ValueError, RuntimeError
            raise click.ClickException(str(exc)) from None
        except (ValueError, ImportError, ConnectionError) as exc:
            fail(str(exc))
        except RuntimeError as exc:
            from ..experiments.protocol import TrainingDiverged
            if isinstance(exc.__cause__, TrainingDiverged):   # rerunning it would diverge again
                raise click.ClickException(f"{exc}; the finished jobs are kept in {out}") from None
            raise click.ClickException(f"{exc}\nFinished jobs are kept in {out}; rerun the same command to "
                                       "resume.") from None
        except OSError as exc:
            raise click.ClickException(f"cannot write into {out}: {exc.strerror or exc}. Finished jobs are kept "
                                       "there; rerun the same command to resume once it is writable.") from None
        try:
            report = write_report(out, partial=partial)
        except IncompleteResults as exc:
            raise click.ClickException(f"{exc}\nThis run's jobs are saved in {out}.") from None
        except OSError as exc:
            raise click.ClickException(f"cannot write the report into {Path(out) / 'report'}: "
                                       f"{exc.strerror or exc}; the results are complete in {out} (rerun "
                                       "`python run.py report` once it is writable)") from None
        click.echo(f"{len(result.computed)} jobs computed, {len(result.reused)} reused, "
                   f"in {result.seconds:.1f} s")
        click.echo(f"results: {Path(out).resolve()} (manifest.json, jobs/)")
        click.echo(f"report: {report['summary.md'].resolve()}")
        _echo_removed(report.removed)
        failures = []
        if figures:
            failures = _figures(out, None, data_dir, None, partial, stop=False, workers=jobs)
        if not report.verification.ok:
            failures.insert(0, f"the report was written from partial results ({_incomplete(report.verification)}; "
                               "see 'Incomplete results' in summary.md)")
        skipped = [f"{name} ({why})" for name, why in result.plan.skipped if name in only]
        if skipped:
            failures.append("asked for with --only but could not run: " + "; ".join(skipped)
                            + " (see the 'skip:' line above); the rest ran and is saved")
        if failures:
            raise click.ClickException("\n".join(failures))
    finally:
        lock.release()


def _incomplete(verification):
    parts = []
    if verification.problems:
        parts.append(f"{len(verification.problems)} job file(s) missing or corrupt")
    if verification.shortfalls:
        parts.append(f"{len(verification.shortfalls)} setup pair(s) with fewer results than configured")
    return " and ".join(parts)


def _echo_removed(paths):
    for path in paths:
        click.echo(f"removed {path} (its simulation is no longer in the results directory)")


def _figures(results, out, data_dir, only, partial=False, stop=True, workers=1):
    """Draw the figures (on ``workers`` processes) and print where; exit status 1 when a figure
    failed (e.g. a write) or was drawn from partial results (stop=False: those reasons are
    returned instead)."""
    from ..experiments.outputs import OutputError
    from ..experiments.verify import IncompleteResults
    try:
        figures_dir, note, drawn = draw_figures(results, out, data_dir, only, partial=partial, workers=workers)
    except (OutputError, IncompleteResults) as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        fail(str(exc))
    click.echo(f"figures: {figures_dir.resolve()} ({note})" if figures_dir else note)
    if drawn is None:
        return []
    _echo_removed(drawn.removed)
    failures = []
    failed = sum(reason.startswith("failed:") for reason in drawn.skipped.values())
    if failed:
        failures.append(f"{failed} figure(s) failed (see above)")
    if drawn.partial:
        failures.append(f"{len(drawn.partial)} figure(s) drawn from partial results, marked in red: "
                        + ", ".join(drawn.partial))
    if failures and stop:
        raise click.ClickException("\n".join(failures))
    return failures


# -- report / figures -------------------------------------------------------------------------------
@cli.command()
@click.option("--results", type=click.Path(file_okay=False, exists=True), default=DEFAULT_OUT, show_default=True,
              callback=not_empty)
@click.option("--partial", is_flag=True, help=PARTIAL_HELP)
def report(results, partial):
    """Rewrite the markdown and CSV summary of a results directory (from its files alone).

    Every job file the manifest lists is checked first (present, its checksum intact) and every
    setup pair must have the results its configuration asks for; otherwise nothing is written
    and the exit status is 1, unless --partial.

    \b
    Example:
      python run.py report --results results
    """
    from ..experiments.outputs import OutputError, ResultsLocked, RunLock
    from ..experiments.report import write_report
    from ..experiments.store import ResultsStore
    from ..experiments.verify import IncompleteResults
    try:
        ResultsStore(results).read_manifest()
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    check_out(Path(results) / "report", option="report directory")
    try:
        with RunLock(results):
            paths = write_report(results, partial=partial)
    except (ResultsLocked, OutputError, IncompleteResults) as exc:
        raise click.ClickException(str(exc)) from None
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        raise click.ClickException(f"cannot write the report into {Path(results) / 'report'}: "
                                   f"{exc.strerror or exc}") from None
    for path in paths.values():
        click.echo(f"wrote {path}")
    _echo_removed(paths.removed)
    if not paths.verification.ok:
        raise click.ClickException(f"the report was written from partial results "
                                   f"({_incomplete(paths.verification)}):\n  "
                                   + "\n  ".join(paths.verification.lines()))


@cli.command()
@click.option("--results", type=click.Path(file_okay=False), default=DEFAULT_OUT, show_default=True,
              callback=not_empty, help="A results directory written by `reproduce`.")
@click.option("--out", type=click.Path(file_okay=False), default=None, callback=not_empty,
              help="Figures directory (default RESULTS/figures).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, callback=not_empty,
              help="Data directory with the measured device data (for the device figures).")
@click.option("--only", multiple=True, callback=not_empty, help="Draw only this figure (repeatable).")
@click.option("--partial", is_flag=True, help=PARTIAL_HELP)
@click.option("--jobs", type=Jobs(), default="auto", show_default=True,
              help="Processes drawing the figures ('auto': one per CPU core, at most one per figure).")
def figures(results, out, data_dir, only, partial, jobs):
    """Draw the figures (PNG and PDF) from a results directory, without rerunning anything.

    The results are checked as for `report` first (missing or corrupt job files, fewer results
    than configured: exit status 1 without --partial). Without --only, result figures of
    simulations no longer in the results directory are removed.

    \b
    Examples:
      python run.py figures                       # from ./results into ./results/figures
      python run.py figures --results /tmp/tiny --out /tmp/tiny-figures
    """
    from ..experiments.outputs import OutputError, ResultsLocked, RunLock
    from ..experiments.store import ResultsStore
    try:
        ResultsStore(results).read_manifest()
    except (FileNotFoundError, ValueError) as exc:
        fail(f"--results: {exc}")
    check_data_dir(data_dir)
    inside = out is None or Path(out).resolve().is_relative_to(Path(results).resolve())
    try:   # drawing into the results directory: not while a run is writing it
        with RunLock(results) if inside else contextlib.nullcontext():
            _figures(results, out, data_dir, list(only) or None, partial,
                     workers=usable_cores() if jobs == "auto" else jobs)
    except (ResultsLocked, OutputError) as exc:
        raise click.ClickException(str(exc)) from None


# -- bench ------------------------------------------------------------------------------------------
def _bench_dir():
    """bench/ of the source checkout (memnp/cli/group.py -> the repository root)."""
    return Path(__file__).resolve().parents[2] / "bench"


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--list", "list_only", is_flag=True, help="List the benchmarks and exit.")
@click.argument("names", nargs=-1, type=click.UNPROCESSED)
@backend_option
def bench(list_only, names):
    """Run benchmark scripts from bench/ (a source checkout), each in its own process.

    Arguments after the first one that starts with '-' are passed to every benchmark named before
    it (see `python bench/NAME.py --help` for each one's options).

    \b
    Examples:
      python run.py bench --list
      python run.py bench kernels epoch
      python run.py bench kernels --quick
      python run.py bench epoch --cases c --repeats 5
      python run.py bench reproduce
      python run.py bench --backend cuda epoch device_epoch
    Without NAMES every benchmark runs (this takes a while). --backend goes before NAMES; the
    JSON records name the backend and the GPU. Results: see bench/RESULTS.md.
    """
    import subprocess
    directory = _bench_dir()
    if not directory.is_dir():
        fail(f"{directory} not found: the benchmarks ship with the source checkout, not the installed package")
    available = sorted(p.stem for p in directory.glob("*.py") if p.stem != "common" and not p.stem.startswith("_"))
    if list_only:
        click.echo("\n".join(available))
        return
    check_backend()
    names, options = _split_bench_arguments(names)
    unknown = [n for n in names if n not in available]
    if unknown:
        fail(f"unknown benchmark {unknown[0]!r}; available: {', '.join(available)}")
    for name in names or available:
        click.echo(f"== bench/{name}.py" + (f" {' '.join(options)}" if options else ""))
        status = subprocess.call([sys.executable, str(directory / f"{name}.py"), *options])
        if status == 2:   # argparse's usage error: the script has said what was wrong, in one line
            click.get_current_context().exit(2)
        if status:
            raise click.ClickException(f"bench/{name}.py exited with status {status}")


def _split_bench_arguments(arguments):
    """(benchmark names, options for them): the options start at the first argument beginning
    with '-' (a lone '--' before them is dropped)."""
    arguments = list(arguments)
    for i, argument in enumerate(arguments):
        if argument.startswith("-"):
            options = arguments[i + 1:] if argument == "--" else arguments[i:]
            return arguments[:i], options
    return arguments, []


for _command in (train, infer, fit_device):
    cli.add_command(_command)


def arguments(argv):
    """The command line with ``reproduce`` put first when no command is given."""
    args = list(argv)
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        args = ["reproduce"] + args
    return args


def main(argv=None, prog_name="run.py"):
    """Entry point: ``python run.py [COMMAND] [OPTIONS]`` (also ``python -m memnp`` and the
    ``memnp`` console script, see memnp/__main__.py); no command (or only options) runs
    ``reproduce``."""
    return cli.main(args=arguments(sys.argv[1:] if argv is None else argv), prog_name=prog_name)
