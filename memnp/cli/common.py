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
DEVICE_HELP = "Device: 'ideal', a preset name (siox-low, siox-high, stuck-off, siox-high-stuck-on, " \
              "d2d-more-uniform, d2d-less-uniform, d2d-high, tahfo2, siox-high-chip, or a variant such as " \
              "siox-high-chip-1y or siox-high-adc6-tiles) or a preset JSON file."


class Bars:
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


class Jobs(click.ParamType):
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


def valid_address(address):
    """Whether ``address`` looks like a scheduler address: ``tcp://HOST:PORT`` or ``HOST:PORT``."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rpartition(":")
    return bool(host) and port.isdigit()


def draw_figures(results, figures_dir=None, data_dir=None, only=None):
    """Call memnp.plotting if it is importable; returns (figures dir or None, note)."""
    try:
        from .. import plotting
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


def stage_for(device, mapping_rule):
    """A Stage from a preset name, a preset file or 'ideal'."""
    if device == "ideal":
        return registry.device_stage("ideal", mapping_rule)
    from ..data.presets import preset_stage
    import dataclasses
    preset = preset_stage(device)
    return dataclasses.replace(preset, mapping_rule=mapping_rule) if mapping_rule else preset


def read_json(path, what):
    """The JSON document in ``path``; a usage error naming the option ``what`` if it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{what} {path} is not a readable JSON file: {exc}")
