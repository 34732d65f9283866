"""Helpers shared by memnp's commands: the option help texts used by more than one command, the
``--jobs`` parameter type, the progress bars of ``reproduce``, error exits, reading a JSON option,
a Stage from a ``--device`` value, and drawing the figures (the only place the CLI reaches
matplotlib, through memnp.plotting, imported when figures are drawn).
"""
import json
from pathlib import Path

import click

from ..experiments import registry

DEFAULT_OUT = "results"
CHECKPOINT_HELP = ("Save a training job's state at most every SECONDS (after an epoch) so that a killed "
                   "run resumes it from there; 0 turns it off.")
PARTIAL_HELP = ("Write even when job files are missing or corrupt or a setup has fewer results than "
                "configured: those records are left out and every affected cell and figure is marked "
                "(the exit status is still 1).")
DEVICE_HELP = "Device: 'ideal', a preset name (siox-low, siox-high, stuck-off, siox-high-stuck-on, " \
              "d2d-more-uniform, d2d-less-uniform, d2d-high, tahfo2, siox-high-chip, or a variant such as " \
              "siox-high-chip-1y or siox-high-adc6-tiles) or a preset JSON file."

RECOMPUTE_STALE_HELP = ("Recompute the results in OUT computed by another memnp numerics version or kernel "
                        "backend (or by a memnp that recorded neither), which otherwise stop the run before it "
                        "computes anything; the other results are kept.")


#: The largest --epochs accepted (the paper trains 1000; more is almost surely a typo).
MAX_EPOCHS = 100_000
#: The largest --repeats (and validation / test repeats) accepted (the paper uses 25).
MAX_REPEATS = 10_000
#: The largest --networks accepted (the paper trains 5 per setup).
MAX_NETWORKS = 1_000
#: The rule for options given with --config (the same for train and infer; see refuse_with_config).
CONFIG_RULE = ("The options the config file sets cannot be given with --config (an error names them): "
               "edit the file instead.")


def interactive():
    """Whether standard output is a terminal (progress bars are drawn only then: elsewhere
    click prints each bar's label as a line of its own)."""
    import sys
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class _NoBar:
    """Stands in for a click progress bar when output is not a terminal."""

    pos = 0

    def update(self, steps):
        self.pos += steps

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def progressbar(**kw):
    """click.progressbar on a terminal, a silent stand-in elsewhere (logs, pipes, CliRunner)."""
    return click.progressbar(**kw) if interactive() else _NoBar()


class Bars:
    """Progress bars: one over jobs; in this process, one over the epochs of each training job.
    When output is not a terminal there are no bars: one line per finished job instead."""

    def __init__(self, show_epochs):
        self.show_epochs = show_epochs
        self.jobs_bar = None
        self.epoch_bar = None
        self.lines = not interactive()
        self.total = self.count = 0

    def message(self, text):
        click.echo(text)

    def jobs_start(self, total, finished):
        if finished:
            click.echo(f"{finished} of {total} jobs already finished in this results directory (reused)")
        self.total, self.count = total, finished
        if self.lines:
            return
        self.jobs_bar = click.progressbar(length=total, label="jobs", show_pos=True, show_eta=True)
        self.jobs_bar.__enter__()
        self.jobs_bar.update(finished)

    def group_start(self, jobs):
        click.echo(f"training {len(jobs)} networks in one pass: {', '.join(job.describe() for job in jobs)}")

    def group_epoch(self, jobs, epoch, epochs):
        what = jobs[0].describe() if len(jobs) == 1 else f"{len(jobs)} networks ({describe_group(jobs)})"
        self._epoch(what, epoch, epochs)

    def epoch(self, job, epoch, epochs):
        self._epoch(job.describe(), epoch, epochs)

    def _epoch(self, what, epoch, epochs):
        if not self.show_epochs or self.lines:
            return
        if self.epoch_bar is None:
            self.epoch_bar = click.progressbar(length=epochs, label=f"  train {what}: epochs", show_pos=True)
            self.epoch_bar.__enter__()
        self.epoch_bar.update(epoch - self.epoch_bar.pos)  # a resumed job starts past epoch 1
        if epoch == epochs:
            self.epoch_bar.__exit__(None, None, None)
            self.epoch_bar = None

    def job_done(self, job):
        self.count += 1
        if self.jobs_bar is not None:
            self.jobs_bar.update(1)
        elif self.lines:
            click.echo(f"job {self.count}/{self.total} done: {job.kind} {job.describe()}")

    def close(self):
        for bar in (self.epoch_bar, self.jobs_bar):
            if bar is not None:
                bar.__exit__(None, None, None)
        self.epoch_bar = self.jobs_bar = None


#: The most local worker processes --jobs starts (each is a whole interpreter holding the data).
MAX_JOBS = 1024


def describe_group(jobs, width=60):
    """The members of a training group in a few words: their setups, cut to about ``width``
    characters (the count says how many there are)."""
    names = [job.describe() for job in jobs]
    text = ", ".join(names)
    if len(text) <= width:
        return text
    kept = []
    for name in names:
        if len(", ".join(kept + [name])) > width - 8:
            break
        kept.append(name)
    return ", ".join(kept) + f", +{len(names) - len(kept)} more"


class Jobs(click.ParamType):
    """An integer from 1 to MAX_JOBS, or 'auto'."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_JOBS):
            return value
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if not 1 <= number <= MAX_JOBS:
            self.fail(f"{value!r} is not an integer from 1 to {MAX_JOBS} or 'auto'", param, ctx)
        return number


GROUP_HELP = ("The most networks trained in one pass (an ensemble: every network keeps its own seeds and gets "
              "exactly the numbers it gets alone), and the most repeats evaluated in one pass: 'auto' (16, and "
              "never fewer units of work than --jobs workers) or N >= 1 (1: one network per pass).")


def usable_cores():
    """The number of CPU cores this process may run on (at least 1)."""
    import os
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def fail(message):
    """A clear one-line error and exit status 2, like click's own usage errors."""
    raise click.UsageError(message)


def not_empty(ctx, param, value):
    """A click callback: refuse an empty (or blank) string, which would otherwise mean the working
    directory or an unnamed preset; None (not given) and tuples of multiple options pass through."""
    values = value if isinstance(value, tuple) else (value,)
    if any(v is not None and not str(v).strip() for v in values):
        raise click.BadParameter("must not be empty", ctx=ctx, param=param)
    return value


def refuse_with_config(ctx, names):
    """With --config: a usage error naming every option of ``names`` (parameter names) given on the
    command line, since the config file sets them (one rule for every command, CONFIG_RULE)."""
    from click.core import ParameterSource
    given = [param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0]
             for param in ctx.command.params
             if param.name in names and ctx.get_parameter_source(param.name) not in (None, ParameterSource.DEFAULT)]
    if given:
        fail(f"{', '.join(given)} cannot be given with --config, which sets {'it' if len(given) == 1 else 'them'}; "
             "edit the config file, or leave --config out")


#: The kernel backends --backend offers (MEMNP_BACKEND also takes numpy, the reference).
BACKEND_CHOICES = ("cpu", "cuda")
BACKEND_HELP = ("Kernel backend: cpu, or cuda (a CUDA GPU: PF MLP training, validation and test passes stay on "
                "the device). Default: $MEMNP_BACKEND, else cpu. It applies to this run's worker processes too "
                "(Dask workers need the same MEMNP_BACKEND), and every record says which backend computed it.")


def _set_backend(ctx, param, value):
    """A click callback: --backend sets MEMNP_BACKEND before anything is computed, so the worker
    processes, the runner's stamps and every kernel call see it as they see the variable."""
    import os
    if value is not None:
        os.environ["MEMNP_BACKEND"] = value
    return value


def backend_option(command):
    """The --backend option (see BACKEND_HELP) of a click command."""
    return click.option("--backend", type=click.Choice(BACKEND_CHOICES), default=None, callback=_set_backend,
                        expose_value=False, help=BACKEND_HELP)(command)


def check_backend():
    """One error line when MEMNP_BACKEND names no backend, or the cuda backend, which cannot run here
    (no numba-cuda, the numba-cuda / numpy 2.5 mismatch, no GPU outside the simulator)."""
    from ..kernels.backend import BackendUnavailable, require_backend
    try:
        require_backend()
    except (ValueError, BackendUnavailable) as exc:
        fail(str(exc))


def valid_address(address):
    """Whether ``address`` looks like a scheduler address: ``tcp://HOST:PORT`` or ``HOST:PORT``."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rpartition(":")
    return bool(host) and port.isdigit()


def draw_figures(results, figures_dir=None, data_dir=None, only=None, partial=False, workers=1):
    """Call memnp.plotting if it is importable; returns (figures dir or None, note, drawn), where
    drawn is memnp.plotting's Drawn (None when plotting is unavailable): its skipped reasons that
    start with "failed:" are figures that failed with an error (a file that could not be written,
    a bug), as opposed to those skipped for want of their inputs; its ``partial`` those drawn from
    partial results. The figures directory is checked for writability first (OutputError, a
    ValueError) and cleared of a killed run's temporaries; a results store that fails
    verification raises IncompleteResults unless ``partial``. Progress goes out a line per
    figure ("figure k/N: name"). A full redraw (``only`` None) into the results directory
    removes the result figures of simulations no longer in it. ``workers``: how many processes
    draw the figures."""
    from ..experiments.outputs import check_writable
    from ..experiments.store import remove_stale_figure_parts
    try:
        from .. import plotting
        draw_all = plotting.draw_all
    except (ImportError, AttributeError) as exc:
        return None, f"figures not drawn: memnp.plotting is not available ({exc})", None
    figures_dir = Path(figures_dir) if figures_dir else Path(results) / "figures"
    check_writable(figures_dir, "figures directory" if figures_dir == Path(results) / "figures" else "--out")
    remove_stale_figure_parts(figures_dir)
    inside = figures_dir.resolve().is_relative_to(Path(results).resolve())
    drawn = draw_all(results, figures_dir, data_dir, only=only, partial=partial, prune=only is None and inside,
                     progress=lambda k, n, name: click.echo(f"figure {k}/{n}: {name}"), workers=workers)
    note = f"{len(drawn)} figure files written"
    if drawn.skipped:
        note += f", {len(drawn.skipped)} figures skipped:" + "".join(
            f"\n  skipped {name}: {reason}" for name, reason in drawn.skipped.items())
    if drawn.partial:
        note += "".join(f"\n  partial {name}: {'; '.join(lines)}" for name, lines in drawn.partial.items())
    return figures_dir, note, drawn


def check_data_dir(data_dir, download=None):
    """A usage error when ``--data-dir`` names no existing directory, so that memnp does not fall
    back silently to the embedded subset; without --data-dir, when $MEMNP_DATA names a file. download:
    the command's --download flag (True: a new directory is fine, downloads create it, but not under
    a file or where nothing can be written), or None for commands without one."""
    import os
    from ..data.paths import ENV_VAR
    option = "--data-dir"
    if data_dir is None and os.environ.get(ENV_VAR):   # the environment's data directory: no silent fallback
        data_dir, option = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
        if not data_dir.exists() and not download:
            return   # a missing default directory is fine (the embedded subset, or downloads create it)
    path = None if data_dir is None else Path(data_dir)
    if path is None or path.is_dir():
        return
    if download:   # a new directory is fine when it can be created (not under a file, not read-only)
        from ..experiments.outputs import OutputError, check_writable
        try:
            check_writable(path, option)
        except OutputError as exc:
            fail(str(exc))
        return
    what = "is not a directory" if path.exists() else "does not exist"
    hint = " (give an existing directory, or add --download to fill a new one)" if download is False else ""
    fail(f"{option} {data_dir} {what}{hint}")


def check_out(path, directory=True, option="--out"):
    """``path`` once it is known to be writable (memnp.experiments.outputs.check_writable); else
    one error line naming it (exit status 1)."""
    from ..experiments.outputs import OutputError, check_writable
    try:
        return check_writable(path, option, directory)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None


def stage_for(device, mapping_rule, option="--device"):
    """A Stage from a preset name, a preset file or 'ideal'; ValueError naming ``option``."""
    if device == "ideal":
        return registry.device_stage("ideal", mapping_rule)
    from ..data.presets import preset_stage
    import dataclasses
    try:
        preset = preset_stage(device)
    except ValueError as exc:
        raise ValueError(f"{option} {device!r}: {exc}") from None
    return dataclasses.replace(preset, mapping_rule=mapping_rule) if mapping_rule else preset


def read_json(path, what):
    """The JSON document in ``path``; a usage error naming the option ``what`` if it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{what} {path} is not a readable JSON file: {exc}")


def save_or_rescue(save, directory, what, description):
    """``save(directory)``; when a write fails there (after the work is done), ``save`` into a
    rescue directory (memnp.experiments.outputs.rescue) and exit with status 1 saying where.
    Returns ``directory``."""
    from ..experiments.outputs import rescue
    try:
        save(directory)
        return directory
    except OSError as exc:
        reason = exc.strerror or str(exc)
        try:
            where = rescue(save, what)
        except OSError as again:
            raise click.ClickException(f"cannot write {description} into {directory} ({reason}), nor into a "
                                       f"rescue directory ({again}); it is lost") from None
        raise click.ClickException(f"cannot write into {directory} ({reason}); {description} was saved to "
                                   f"{where} instead") from None
