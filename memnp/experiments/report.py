"""The summary of a results store: markdown and CSV, from the store alone.

For every (training setup, inference setup) pair of the manifest's simulations: the number of
results (networks x repeats), the median test error and its interquartile range (per cent), the
mean power of the network's crossbars (W), the energy efficiency (docs/model.md §3, TOPS/W) at that power,
and the paper's numbers (docs/model.md §8) where it gives them. Also the robustness matrix (median error of
the 13 MNIST networks on the 9 inference setups), the diagonal table next to the paper's, and the
paper's orderings checked on these results; and the tables of the simulations beyond the paper
(:mod:`memnp.experiments.report_sweeps`).

Files (in ``<root>/report/``): ``summary.md``, ``summary.csv``, ``robustness.csv``, ``diagonal.csv``,
and ``drift.csv`` / ``adc.csv`` when those simulations have results, and ``line_resistance.csv`` with that simulation's section
(:mod:`.report_line_resistance`). A report file of memnp's that the store no longer gives (e.g.
``drift.csv`` after the manifest was started afresh without drift) is removed.

The store is verified first (:mod:`.verify`): a missing or corrupt job file, or a pair with fewer
results than configured, stops the report (:class:`~memnp.experiments.verify.IncompleteResults`)
unless ``partial`` is set; then the bad records are left out of every number, a section at the top
names them, and every cell computed from fewer results than configured carries a ``*`` (the
per-simulation tables show "n of N").
"""
import csv
import io

import numpy as np

from . import paper, registry, report_sweeps
from . import report_line_resistance
from .protocol import energy_efficiency
from .store import ResultsStore, write_text
from .verify import IncompleteResults, verify

#: The files the report may write; any of them that a report does not write is removed.
REPORT_FILES = ("summary.md", "summary.csv", "robustness.csv", "diagonal.csv", "drift.csv", "adc.csv",
                "line_resistance.csv")

SUMMARY_COLUMNS = ("simulation", "training", "inference", "training_label", "inference_label",
                   "n_results", "median_error_pct", "q25_error_pct", "q75_error_pct", "iqr_error_pct",
                   "mean_power_W", "efficiency_TOPS_per_W", "paper_median_error_pct", "paper_power_W", "n_expected")


class ReportPaths(dict):
    """{file name: path} of the files written, with ``verification`` (:class:`~.verify.Verification`)
    and ``removed`` (paths of stale report files deleted)."""

    def __init__(self, paths, verification, removed=()):
        super().__init__(paths)
        self.verification, self.removed = verification, list(removed)


def _results(store, manifest, training, inference, exclude=frozenset()):
    """(errors %, powers W, n_synapses) over every finished repeat of a pair, or None; records of
    the jobs in ``exclude`` (those that failed verification) are left out."""
    errors, powers, n_syn = [], [], None
    for record in store.infer_records(manifest, training, inference):
        if record.get("key") in exclude:
            continue
        errors.extend(100.0 * (1.0 - np.asarray(record["accuracy"], float)))
        powers.extend(np.nan if p is None else p for p in record["power"])
        n_syn = record.get("n_synapses", n_syn)
    if not errors:
        return None
    return np.asarray(errors), np.asarray(powers, float), n_syn


def pair_row(store, manifest, simulation, training, inference, verification=None):
    """The summary row of a pair (see SUMMARY_COLUMNS); with a ``verification``, its bad records
    are left out, ``n_expected`` is filled in and ``incomplete`` says whether results are missing."""
    exclude = verification.bad_keys if verification is not None else frozenset()
    result = _results(store, manifest, training, inference, exclude)
    expected = verification.expected.get((training, inference)) if verification is not None else None
    row = {"n_expected": expected,
           "incomplete": verification is not None and verification.shortfall(training, inference) is not None,
           "simulation": simulation, "training": training, "inference": inference,
           "training_label": manifest["trainings"].get(training, {}).get("label", training),
           "inference_label": manifest["inferences"].get(inference, {}).get("label", inference),
           "paper_median_error_pct": paper.MEDIAN_ERROR.get((training, inference)),
           "paper_power_W": paper.POWER.get((training, inference))}
    if result is None:
        return dict(row, n_results=0)
    errors, powers, n_syn = result
    q25, median, q75 = np.percentile(errors, [25, 50, 75])
    power = float(np.mean(powers)) if np.all(np.isfinite(powers)) else None
    efficiency = energy_efficiency(n_syn, power) if n_syn else None
    return dict(row, n_results=len(errors), median_error_pct=float(median), q25_error_pct=float(q25),
                q75_error_pct=float(q75), iqr_error_pct=float(q75 - q25), mean_power_W=power,
                efficiency_TOPS_per_W=None if efficiency is None else efficiency / 1e12)


def summary_rows(store, manifest, verification=None):
    rows = []
    for name, sim in manifest["simulations"].items():
        for training, inference in sim["pairs"]:
            rows.append(pair_row(store, manifest, name, training, inference, verification))
    return rows


def _unique_pairs(rows):
    return {(r["training"], r["inference"]): r for r in rows}


def robustness(pairs):
    """{training: {inference: median error or None}} over the 13 x 9 matrix (rows present only)."""
    matrix = {}
    for training in registry.AGNOSTIC_TRAININGS:
        cells = {i: pairs.get((training, i), {}).get("median_error_pct") for i in registry.AGNOSTIC_INFERENCES}
        if any(v is not None for v in cells.values()):
            matrix[training] = cells
    return matrix


def diagonal(pairs):
    """The table of docs/model.md §8 with our medians: [(label, [(ours, paper) x 3])]."""
    rows = []
    for label, inference, *trainings in paper.DIAGONAL:
        cells = []
        for training in trainings:
            if training is None:
                cells.append(None)
            else:
                ours = pairs.get((training, inference), {}).get("median_error_pct")
                cells.append((ours, paper.MEDIAN_ERROR.get((training, inference))))
        rows.append((label, inference, trainings, cells))
    return rows


def checks(pairs):
    """The paper's orderings (issue 5's targets) on these results: [(statement, True/False/None)].
    A statement read from a pair with fewer results than configured says so."""
    flagged = []   # whether the statement being built read an incomplete pair

    def median(t, i):
        flagged.append(bool(pairs.get((t, i), {}).get("incomplete")))
        return pairs.get((t, i), {}).get("median_error_pct")

    def power(t, i):
        flagged.append(bool(pairs.get((t, i), {}).get("incomplete")))
        return pairs.get((t, i), {}).get("mean_power_W")

    out = []

    def add(statement, verdict):
        out.append((statement + (" (* from fewer results than configured)" if any(flagged) else ""), verdict))
        flagged.clear()

    ideal, aware = median("ideal", "high_pf"), median("high_pf", "high_pf")
    ratio = "" if None in (ideal, aware) or not aware else f" ({ideal / aware:.1f} x; paper 41.6 % / 9.1 % = 4.6 x)"
    add(f"high-R SiOx: ideal training's median error is above aware training's{ratio}",
        None if None in (ideal, aware) else ideal > aware)
    for regime in ("high", "low"):
        reg, unreg = power(f"{regime}_pf_reg", f"{regime}_pf"), power(f"{regime}_pf", f"{regime}_pf")
        add(f"{regime}-R SiOx: regularised aware training draws less power than aware training",
            None if None in (reg, unreg) else reg < unreg)
    for label, inference, ideal_t, aware_t, _ in paper.DIAGONAL[1:]:
        a, b = median(ideal_t, inference), median(aware_t, inference)
        add(f"{label}: aware training beats ideal training", None if None in (a, b) else b < a)
    return out


def _star(pairs, training, inference):
    """" *" after a cell computed from fewer results than configured, else ""."""
    return " *" if pairs.get((training, inference), {}).get("incomplete") else ""


def incomplete_lines(verification):
    """The summary.md section naming what a partial report leaves out (empty when nothing)."""
    if verification is None or verification.ok:
        return []
    lines = ["## Incomplete results (written with --partial)", "",
             "These job files are missing or failed their checks and are left out of every number; cells "
             "marked * are computed from fewer results than configured.", ""]
    lines += [f"- `{p.path}` ({p.kind} {p.training}" + (f" -> {p.inference}" if p.inference else "")
              + f"): {p.reason}" for p in verification.problems]
    lines += [f"- {s.simulation}: {s.training} -> {s.inference}: {s.found} of {s.expected} results"
              for s in verification.shortfalls]
    return lines + [""]


def _fmt(value, digits=2):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}"
    return str(value)


def _power(value):
    if value is None:
        return "–"
    for scale, unit in ((1, "W"), (1e-3, "mW"), (1e-6, "µW")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.3g} nW"


def _csv(rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    return buffer.getvalue()


def markdown(manifest, rows, pairs, verification=None):
    lines = ["# memnp results", "",
             f"Preset `{manifest.get('preset')}`, seed {manifest.get('seed')}, data: "
             + ", ".join(f"{k} -> {v or 'not available'}" for k, v in manifest.get("sources", {}).items())
             + f". Scale: {manifest.get('scale', {}).get('epochs')} epochs at learning rate "
             f"{manifest.get('scale', {}).get('learning_rate')}, "
             f"{manifest.get('scale', {}).get('networks')} network(s) per setup, "
             f"{manifest.get('scale', {}).get('inference_repeats')} inference repeats.", "",
             "Error = 100 (1 - accuracy) in per cent; power = total average power of the crossbars; "
             "efficiency = 2 N_syn / (50 ns x power). Paper: docs/model.md §8 (5 networks x 25 repeats, 1000 epochs, "
             "full MNIST).", ""]
    lines += incomplete_lines(verification)
    lines += ["## Diagonal (median test error %, ours / paper)", "",
              "| setup | ideal training | aware training | aware + regularised |", "|---|---|---|---|"]
    for label, inference, trainings, cells in diagonal(pairs):
        text = ["" if c is None else f"{_fmt(c[0], 1)}{_star(pairs, t, inference)} / {_fmt(c[1], 1)}"
                for t, c in zip(trainings, cells)]
        lines.append(f"| {label} | " + " | ".join(text) + " |")
    lines += ["", "## The paper's orderings on these results", ""]
    for statement, ok in checks(pairs):
        lines.append(f"- {'yes' if ok else 'no' if ok is False else 'n/a'}: {statement}")
    for name, sim in manifest["simulations"].items():
        lines += ["", f"## {name}", "", sim["description"] + (f" (skipped: {sim['skipped']})" if sim.get("skipped") else ""), ""]
        sim_rows = [r for r in rows if r["simulation"] == name]
        if not sim_rows:
            continue
        lines += ["| training | inference | n | median error % | IQR % | power | TOPS/W | paper error % | paper power |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in sim_rows:
            n = f"{r['n_results']} of {r['n_expected']} *" if r.get("incomplete") else r["n_results"]
            lines.append(f"| {r['training_label']} | {r['inference_label']} | {n} | "
                         f"{_fmt(r.get('median_error_pct'))} | {_fmt(r.get('iqr_error_pct'))} | "
                         f"{_power(r.get('mean_power_W'))} | {_fmt(r.get('efficiency_TOPS_per_W'), 3)} | "
                         f"{_fmt(r.get('paper_median_error_pct'), 1)} | {_power(r.get('paper_power_W'))} |")
    matrix = robustness(pairs)
    if matrix:
        lines += ["", "## Robustness (median test error %, training rows x inference columns)", "",
                  "| training | " + " | ".join(registry.AGNOSTIC_INFERENCES) + " |",
                  "|---" * (len(registry.AGNOSTIC_INFERENCES) + 1) + "|"]
        for training, cells in matrix.items():
            lines.append(f"| {training} | " + " | ".join(_fmt(cells[i], 1) + _star(pairs, training, i)
                                                         for i in registry.AGNOSTIC_INFERENCES) + " |")
    lines += report_sweeps.markdown(pairs, _fmt, _power)
    return "\n".join(lines) + "\n"


def write_report(root, partial=False):
    """Write the report files of the results directory ``root``; returns a :class:`ReportPaths`
    ({name: path}). IncompleteResults (a ValueError, nothing written) when the store fails
    verification, unless ``partial`` (see the module docstring)."""
    store = ResultsStore(root)
    manifest = store.read_manifest()
    verification = verify(store, manifest)
    if not verification.ok and not partial:
        raise IncompleteResults(root, verification)
    rows = summary_rows(store, manifest, verification)
    pairs = _unique_pairs(rows)
    out = store.report_dir
    paths = {"summary.md": out / "summary.md", "summary.csv": out / "summary.csv",
             "robustness.csv": out / "robustness.csv", "diagonal.csv": out / "diagonal.csv"}
    lr_rows = report_line_resistance.rows(store, manifest, verification)
    write_text(paths["summary.md"], markdown(manifest, rows, pairs, verification)
               + "".join(line + "\n" for line in report_line_resistance.markdown(lr_rows, _fmt, _power)))
    write_text(paths["summary.csv"], _csv(rows, SUMMARY_COLUMNS))
    matrix = robustness(pairs)
    write_text(paths["robustness.csv"], _csv([dict(training=t, **cells) for t, cells in matrix.items()],
                                             ("training",) + registry.AGNOSTIC_INFERENCES))
    diag_rows = []
    for label, inference, trainings, cells in diagonal(pairs):
        row = {"setup": label, "inference": inference}
        for kind, training, cell in zip(("ideal", "aware", "aware_reg"), trainings, cells):
            row[f"{kind}_training"] = training
            row[f"{kind}_median_error_pct"] = None if cell is None else cell[0]
            row[f"{kind}_paper_pct"] = None if cell is None else cell[1]
        diag_rows.append(row)
    columns = ("setup", "inference") + tuple(f"{k}_{s}" for k in ("ideal", "aware", "aware_reg")
                                              for s in ("training", "median_error_pct", "paper_pct"))
    write_text(paths["diagonal.csv"], _csv(diag_rows, columns))
    for name, (table, table_columns) in report_sweeps.csv_tables(pairs).items():
        paths[name] = out / name
        write_text(paths[name], _csv(table, table_columns))
    if lr_rows:
        paths["line_resistance.csv"] = out / "line_resistance.csv"
        write_text(paths["line_resistance.csv"], _csv(lr_rows, report_line_resistance.COLUMNS))
    removed = []
    for name in REPORT_FILES:   # the report files of simulations no longer in the store
        path = out / name
        if name not in paths and path.is_file():
            path.unlink()
            removed.append(path)
    return ReportPaths(paths, verification, removed)
