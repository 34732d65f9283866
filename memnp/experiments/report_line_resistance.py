"""The ``line_resistance`` section of the report: test error and power (devices and wires)
against the line resistance r, per device regime and training.

For every (device, training, r) of the manifest's ``line_resistance`` pairs: the number of results
(networks x repeats), the median test error and its quartiles (per cent), and the mean power of the
network's crossbars split into the devices' and the wires' dissipation (W). Written into
``summary.md`` (a section) and ``line_resistance.csv``.
"""
import numpy as np

from . import line_resistance

COLUMNS = ("device", "training_kind", "training", "inference", "r_ohm", "n_results", "median_error_pct",
           "q25_error_pct", "q75_error_pct", "device_power_W", "wire_power_W", "total_power_W")
#: Training kinds in table order, and their labels.
KINDS = (("ideal", "ideal training"), ("aware", "PF-aware"), ("fine-tuned", "PF-aware, fine-tuned at r"))


def training_kind(manifest, training):
    """"ideal", "aware" or "fine-tuned" for a training setup of the sweep."""
    entry = manifest.get("trainings", {}).get(training, {})
    if entry.get("parent"):
        return "fine-tuned"
    return "ideal" if entry.get("device") == "ideal" else "aware"


def rows(store, manifest, verification=None):
    """One dict per (device, training, r) pair of the sweep (see :data:`COLUMNS`), in order of
    device, training kind and r; pairs without a finished result have n_results 0. With a
    :class:`~memnp.experiments.verify.Verification`, records that failed it are left out and a
    pair with fewer results than configured gets ``n_expected`` and ``incomplete``."""
    exclude = verification.bad_keys if verification is not None else frozenset()
    sim = manifest.get("simulations", {}).get(line_resistance.NAME)
    if not sim:
        return []
    out = []
    for t, i in sim["pairs"]:
        inference = manifest.get("inferences", {}).get(i, {})
        r = inference.get("wires_ohm")
        if r is None:
            continue
        row = {"device": inference.get("device"), "training_kind": training_kind(manifest, t), "training": t,
               "inference": i, "r_ohm": float(r), "n_results": 0}
        short = verification.shortfall(t, i) if verification is not None else None
        if short is not None:
            row.update(incomplete=True, n_expected=short.expected)
        errors, total, wires = [], [], []
        for record in store.infer_records(manifest, t, i):
            if record.get("key") in exclude:
                continue
            errors.extend(100.0 * (1.0 - np.asarray(record["accuracy"], float)))
            total.extend(np.nan if p is None else p for p in record["power"])
            wires.extend(record.get("wire_power") or [0.0] * len(record["power"]))
        if errors:
            q25, median, q75 = np.percentile(errors, [25, 50, 75])
            total_W, wire_W = float(np.mean(total)), float(np.mean(wires))
            row.update(n_results=len(errors), median_error_pct=float(median), q25_error_pct=float(q25),
                       q75_error_pct=float(q75), total_power_W=total_W, wire_power_W=wire_W,
                       device_power_W=total_W - wire_W)
        out.append(row)
    order = {kind: n for n, (kind, _) in enumerate(KINDS)}
    devices = [d for _, d, _, _ in line_resistance.DEVICES]
    out.sort(key=lambda row: (devices.index(row["device"]) if row["device"] in devices else len(devices),
                              order[row["training_kind"]], row["r_ohm"]))
    return out


def markdown(table, fmt, power):
    """Lines of the summary.md section (empty without sweep results); ``fmt`` and ``power``
    format numbers and watts as the rest of the report does."""
    if not any(row["n_results"] for row in table):
        return []
    r_values = sorted({row["r_ohm"] for row in table})
    lines = ["", "## line_resistance: test error against the line resistance", "",
             "Median test error (%) with r ohms per word- and bit-line segment, every array (128 x 64 "
             "tiles) its own circuit; r = 0: the tiles without wires. Fine-tuned: the PF-aware network "
             "trained a few more epochs with that r in the loop.", ""]
    devices = []
    for row in table:
        if row["device"] not in devices:
            devices.append(row["device"])
    label = {d: text for _, d, _, text in line_resistance.DEVICES}
    lines += ["| device | training | " + " | ".join(f"r = {r:g} Ω" for r in r_values) + " |",
              "|---|---" + "|---" * len(r_values) + "|"]
    for device in devices:
        for kind, kind_label in KINDS:
            cells = {row["r_ohm"]: row for row in table if row["device"] == device and row["training_kind"] == kind}
            if not cells:
                continue
            text = [fmt(cells[r].get("median_error_pct"), 1) + (" *" if cells[r].get("incomplete") else "")
                    if r in cells else "" for r in r_values]
            lines.append(f"| {label.get(device, device)} | {kind_label} | " + " | ".join(text) + " |")
    lines += ["", "Power of the crossbars (mean over repeats), devices and wires:", "",
              "| device | training | r (Ω) | n | median error % | IQR % | device power | wire power | wires / total |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        if not row["n_results"]:
            continue
        share = row["wire_power_W"] / row["total_power_W"] if row["total_power_W"] else None
        lines.append(f"| {label.get(row['device'], row['device'])} | {dict(KINDS)[row['training_kind']]} | "
                     f"{row['r_ohm']:g} | {_n(row)} | {fmt(row['median_error_pct'])} | "
                     f"{fmt(row['q75_error_pct'] - row['q25_error_pct'])} | {power(row['device_power_W'])} | "
                     f"{power(row['wire_power_W']) if row['wire_power_W'] else '0'} | {'–' if share is None else f'{100 * share:.1f} %'} |")
    return lines


def _n(row):
    """The n cell: "n of N *" when the pair has fewer results than configured."""
    return f"{row['n_results']} of {row['n_expected']} *" if row.get("incomplete") else str(row["n_results"])
