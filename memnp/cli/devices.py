"""The ``fit-device`` command: a Poole-Frenkel device preset (JSON) fitted to measured I-V curves."""
import math
from pathlib import Path

import click

from .common import check_out, fail, not_empty, save_or_rescue

#: The fit uses each curve from 0 V up to this voltage (fit_siox's max_voltage, V); --k-V above it
#: would read the devices at voltages the fit never saw.
FIT_VOLTAGE = 0.5


def _finite(ctx, param, value):
    """A click callback refusing NaN (FloatRange lets it through)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not in the range 0<x<={FIT_VOLTAGE:g}", ctx=ctx, param=param)
    return value


@click.command("fit-device")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--regime", type=click.Choice(["low", "high", "both"]), default="both", show_default=True,
              help="Resistance regime(s) to save (split at the conductance quantum). With both, a regime "
                   "with fewer than 3 curves is left out (and the command says so).")
@click.option("--out", type=click.Path(), default=None, callback=not_empty,
              help="Preset JSON path. With --regime both: a directory (NAME-low.json and NAME-high.json in "
                   "it), or a file name whose -low / -high versions are written (mine.json: mine-low.json "
                   "and mine-high.json). Default: next to FILE.")
@click.option("--name", default=None, callback=not_empty,
              help="Preset name (default: FILE's stem and the regime).")
@click.option("--k-v", "k_V", type=click.FloatRange(0, FIT_VOLTAGE, min_open=True), default=0.5, show_default=True,
              callback=_finite, help=f"Voltage scaling factor k_V (V): the largest read voltage, at most the "
                                     f"{FIT_VOLTAGE:g} V up to which the curves are fitted.")
def fit_device(file, regime, out, name, k_V):
    """Fit the Poole-Frenkel model to measured I-V curves and save device presets (JSON).

    FILE is a MATLAB file in the SiOx multistate layout (variable `data`, (point, channel, state);
    channel 0 current in A, channel 1 voltage in V) or an .npz with arrays V and I of shape
    (curves, points), voltages from 0 V in 5 mV steps up to at least 0.5 V, currents positive.
    The presets can be given to `train --device` and `infer --device`.

    \b
    Examples:
      python run.py fit-device SiO_x-multistate-data.mat
      python run.py fit-device my-curves.npz --regime high --out my-device.json
    """
    from ..data.devices import fit_siox, load_siox_mat
    from ..data.preset_files import preset_from_fit, save_preset
    path = Path(file)
    try:
        V, I = _read_curves(path) if path.suffix.lower() == ".npz" else load_siox_mat(path)
        _check_curves(path, V, I)
        regimes = ["low", "high"] if regime == "both" else [regime]
        targets = []
        for reg in regimes:
            preset_name = (name + (f"-{reg}" if regime == "both" else "")) if name else f"{path.stem}-{reg}"
            target = _target(path, out, preset_name, reg, regime == "both")
            check_out(target, directory=False, option="--out" if out is not None else "preset file")
            targets.append((reg, preset_name, target))
        fit = fit_siox(V, I, max_voltage=FIT_VOLTAGE)
        if regime == "both":
            missing = [reg for reg in regimes if getattr(fit, reg) is None]
            if len(missing) == 2:
                fail(f"{path}: neither resistance regime has 3 or more fitted curves; no fit")
            if missing:
                click.echo(f"only the {'high' if missing == ['low'] else 'low'}-resistance regime has 3 or more "
                           f"fitted curves: fitting that regime alone (no {missing[0]}-resistance preset)")
            targets = [t for t in targets if t[0] not in missing]
        records = [(preset_from_fit(fit, reg, name=preset_name, k_V=k_V,
                                    description=f"PF fit of {path.name}, {reg}-resistance regime",
                                    source=f"fitted by memnp fit-device from {path.name}"), target)
                   for reg, preset_name, target in targets]
    except ValueError as exc:
        fail(str(exc))
    click.echo(f"{len(fit.R)} curves fitted ({len(fit.dropped)} dropped)")

    def save(directory):  # every target has the same parent directory
        for record, target in records:
            save_preset(record, directory / target.name)

    where = save_or_rescue(save, records[0][1].parent, "fit-device", "the fitted presets")
    for record, target in records:
        target = where / target.name
        stage = record.stage
        pf = stage["nonidealities"][0]
        click.echo(f"{record.name}: G_off {stage['G_off']:.6g} S, G_on {stage['G_on']:.6g} S, slopes "
                   f"{_rounded(pf['slopes'])}, intercepts {_rounded(pf['intercepts'])} -> {target}")


def _target(path, out, preset_name, regime, both):
    """The preset file of one regime: next to FILE (no --out), in the --out directory, at --out, or
    (several regimes, --out a file name) --out with -REGIME added to its stem (mine.json ->
    mine-low.json)."""
    if out is None:
        return path.with_name(f"{preset_name}.json")
    out = Path(out)
    if out.is_dir():
        return out / f"{preset_name}.json"
    if not both:
        return out
    stem = out.name[:-len(".json")] if out.name.lower().endswith(".json") else out.name
    return out.with_name(f"{stem}-{regime}.json")


def _read_curves(path):
    """(V, I) from an .npz with arrays V and I; ValueError naming the file when it cannot be read."""
    import zipfile
    import numpy as np
    try:
        with np.load(path, allow_pickle=False) as data:
            if "V" not in data.files or "I" not in data.files:
                raise ValueError(f"{path} must hold arrays named V and I (curves, points); it holds "
                                 f"{', '.join(data.files) or 'no arrays'}")
            return data["V"], data["I"]
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a readable .npz file ({exc or 'empty file'})") from None
    except ValueError as exc:
        if "must hold arrays" in str(exc):
            raise
        raise ValueError(f"{path} is not a readable .npz file ({exc})") from None


def _check_curves(path, V, I):
    """ValueError naming the file unless I is (curves >= 3, points) of numbers, V is (points,) or I's
    shape, and no current at a positive voltage of the fitted range is negative."""
    import numpy as np
    V, I = np.asarray(V), np.asarray(I)
    for label, array in (("V", V), ("I", I)):
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{path}: {label} must hold numbers; it has dtype {array.dtype}")
    if I.ndim != 2 or I.shape[0] < 3:
        raise ValueError(f"{path}: I has shape {I.shape}; expected (curves, points) with at least 3 curves "
                         "(a regime's fit needs 3 or more; a 1-D array is a single curve)")
    if V.shape not in (I.shape, I.shape[1:]):
        raise ValueError(f"{path}: V has shape {V.shape}; expected {I.shape} (as I) or ({I.shape[1]},)")
    V = np.broadcast_to(V, I.shape).astype(float)
    fitted = V <= FIT_VOLTAGE + 1e-9
    negative = int(np.count_nonzero((I < 0) & (V > 0) & fitted))
    if negative:
        raise ValueError(f"{path}: {negative} currents at positive voltages up to {FIT_VOLTAGE:g} V are negative; "
                         "fit-device fits currents > 0 (flip the sign of curves measured at negative polarity)")


def _rounded(values):
    """A list of floats for printing, to 6 significant digits (the file keeps every digit)."""
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"
