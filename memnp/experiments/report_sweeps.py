"""Report sections of the simulations beyond the paper (``combined``, ``drift``, ``adc``).

Each table is built from the summary rows of :mod:`memnp.experiments.report` (median test error
and interquartile range in per cent over networks x repeats) and laid out the way the simulation
reads: ``combined`` one row per training; ``drift`` trainings against the time after programming;
``adc`` trainings (one array or 128 x 64 tiles) against the ADC's bits. A section is left out
when none of its pairs has results.

Files (in ``<root>/report/``, next to the summary): ``drift.csv`` and ``adc.csv``.
"""
from ..data.presets import ADC_BITS
from . import registry

#: (row name, training, suffix of the inference setup names) of the adc table.
ADC_ROWS = tuple((f"{t}{'_tiles' if tiles else ''}", t, "_tiles" if tiles else "")
                 for t in registry.ADC_TRAININGS for tiles in (False, True))
DRIFT_COLUMNS = tuple(name for name, *_ in registry.DRIFT_READS)
DRIFT_SECONDS = {name: t for name, _, _, t in registry.DRIFT_READS}
_TIME_WORDS = ("1 s", "1 h", "1 day", "1 month", "1 year")


def _cell(pairs, training, inference):
    row = pairs.get((training, inference), {})
    return row.get("median_error_pct"), row.get("iqr_error_pct")


def combined_rows(pairs):
    """[(training, label, median %, IQR %, power W)] of the combined simulation (tested on the chip)."""
    out = []
    for training, inference in registry.SIMULATIONS["combined"].pairs:
        row = pairs.get((training, inference), {})
        if row.get("n_results"):
            out.append((training, row["training_label"], row["median_error_pct"], row["iqr_error_pct"],
                        row.get("mean_power_W")))
    return out


def drift_matrix(pairs):
    """{training: {inference: (median %, IQR %)}} over the drift simulation (rows with results)."""
    out = {}
    for training in registry.DRIFT_TRAININGS:
        cells = {i: _cell(pairs, training, i) for i in DRIFT_COLUMNS}
        if any(m is not None for m, _ in cells.values()):
            out[training] = cells
    return out


def adc_matrix(pairs):
    """{row name: {bits: (median %, IQR %)}}: rows "ideal", "ideal_tiles", "high_pf", "high_pf_tiles"."""
    out = {}
    for name, training, suffix in ADC_ROWS:
        cells = {b: _cell(pairs, training, f"adc{b}{suffix}") for b in ADC_BITS}
        if any(m is not None for m, _ in cells.values()):
            out[name] = cells
    return out


def _pct(cell, fmt, pairs=None, pair=None):
    """"median (IQR)", with " *" when the pair has fewer results than configured."""
    median, iqr = cell
    star = " *" if pairs is not None and pairs.get(pair, {}).get("incomplete") else ""
    return "–" if median is None else f"{fmt(median, 1)} ({fmt(iqr, 1)}){star}"


def _label(pairs, training):
    return next((r["training_label"] for (t, _), r in pairs.items() if t == training), training)


def markdown(pairs, fmt, power_fmt):
    """Markdown lines of the three sections (``fmt(value, digits)``, ``power_fmt(W)`` format numbers)."""
    lines = []
    rows = combined_rows(pairs)
    if rows:
        lines += ["", "## Beyond the paper: the worked-example chip (combined)", "",
                  "Median test error % (IQR) on the whole chip, 1 day after programming.", "",
                  "| training | median error % (IQR) | power |", "|---|---|---|"]
        combined = dict(registry.SIMULATIONS["combined"].pairs)
        lines += [f"| {label} | {_pct((m, q), fmt, pairs, (t, combined[t]))} | {power_fmt(p)} |"
                  for t, label, m, q, p in rows]
    matrix = drift_matrix(pairs)
    if matrix:
        lines += ["", "## Beyond the paper: drift", "",
                  "Median test error % (IQR) of the chip read at each time after programming.", "",
                  "| training | " + " | ".join(_TIME_WORDS) + " |", "|---" * (len(_TIME_WORDS) + 1) + "|"]
        for training, cells in matrix.items():
            lines.append(f"| {_label(pairs, training)} | "
                         + " | ".join(_pct(cells[i], fmt, pairs, (training, i)) for i in DRIFT_COLUMNS) + " |")
    matrix = adc_matrix(pairs)
    if matrix:
        lines += ["", "## Beyond the paper: ADC resolution", "",
                  "Median test error % (IQR) on high-R SiOx PF read by ADCs of 3 to 8 bits (worst-case "
                  "full scale), the crossbar as one array or as 128 x 64 tiles.", "",
                  "| training | arrays | " + " | ".join(f"{b} bits" for b in ADC_BITS) + " |",
                  "|---|---" + "|---" * len(ADC_BITS) + "|"]
        for name, training, suffix in ADC_ROWS:
            if name in matrix:
                lines.append(f"| {_label(pairs, training)} | {'128 x 64 tiles' if suffix else 'one'} | "
                             + " | ".join(_pct(matrix[name][b], fmt, pairs, (training, f"adc{b}{suffix}"))
                                          for b in ADC_BITS) + " |")
    return lines


def csv_tables(pairs):
    """{file name: (rows, columns)} of the long-form drift and adc tables (empty ones left out)."""
    out = {}
    drift = [{"training": t, "inference": i, "seconds": DRIFT_SECONDS[i], "median_error_pct": m,
              "iqr_error_pct": q}
             for t, cells in drift_matrix(pairs).items() for i, (m, q) in cells.items()]
    if drift:
        out["drift.csv"] = (drift, ("training", "inference", "seconds", "median_error_pct", "iqr_error_pct"))
    adc = [{"training": training, "tiles": bool(suffix), "bits": b, "median_error_pct": m, "iqr_error_pct": q}
           for name, training, suffix in ADC_ROWS for b, (m, q) in adc_matrix(pairs).get(name, {}).items()]
    if adc:
        out["adc.csv"] = (adc, ("training", "tiles", "bits", "median_error_pct", "iqr_error_pct"))
    return out
