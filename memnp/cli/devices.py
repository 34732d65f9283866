"""The ``fit-device`` command: a Poole-Frenkel device preset (JSON) fitted to measured I-V curves."""
from pathlib import Path

import click

from .common import check_out, fail, save_or_rescue


@click.command("fit-device")
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
    from ..data.devices import fit_siox, load_siox_mat
    from ..data.presets import preset_from_fit, save_preset
    path = Path(file)
    try:
        if path.suffix.lower() == ".npz":
            import numpy as np
            with np.load(path, allow_pickle=False) as data:
                if "V" not in data.files or "I" not in data.files:
                    fail(f"{path} must hold arrays named V and I (curves, points)")
                V, I = data["V"], data["I"]
        else:
            V, I = load_siox_mat(path)
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
            check_out(target, directory=False, option="--out" if out is not None else "preset file")
            targets.append((reg, preset_name, target))
        fit = fit_siox(V, I)
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


def _rounded(values):
    """A list of floats for printing, to 6 significant digits (the file keeps every digit)."""
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"
