"""Reports and figures a user can trust (issue 16, items 2 and 3): `report`, `figures` and the end
of `reproduce` verify every record they read (or go on with --partial, marking what is missing and
still exiting 1); after any run the report and figures describe every simulation in the results
directory and nothing else; an --only simulation that cannot run exits 1; `figures` shows its
progress."""
import json
import shutil

import pytest
from click.testing import CliRunner

from memnp.cli import cli
from memnp.experiments import datasource
from memnp.experiments.runner import skip_message

TINY = ("--preset", "tiny", "--jobs", "1", "--checkpoint-every", "0")


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _errors(result):
    """The ``Error:`` lines of a failed command (exactly one), and its whole output."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return result.output


@pytest.fixture(scope="module")
def two_simulations(tmp_path_factory):
    """A tiny results directory of stuck_off and high_d2d (no figures yet)."""
    root = tmp_path_factory.mktemp("verify")
    (root / "no-data").mkdir()
    out = root / "results"
    result = _run("reproduce", *TINY, "--only", "stuck_off", "--only", "high_d2d", "--out", out, "--no-figures",
                  "--data-dir", root / "no-data")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def results(two_simulations, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(two_simulations, out)
    (tmp_path / "no-data").mkdir()
    return out


def _job(out, kind, training, inference=None):
    manifest = json.loads((out / "manifest.json").read_text())
    return next(k for k, j in manifest["jobs"].items() if j["kind"] == kind and j["training"] == training
                and j["inference"] == inference)


def test_an_edited_record_stops_report_and_figures_naming_it(results, tmp_path):
    key = _job(results, "infer", "stuck_off", "stuck_off")
    path = results / "jobs" / "infer" / f"{key}.json"
    record = json.loads(path.read_text())
    record["accuracy"] = [0.001] * len(record["accuracy"])   # sha256 now stale
    path.write_text(json.dumps(record))
    before = (results / "report" / "summary.md").read_text()
    output = _errors(_run("report", "--results", results))
    assert f"jobs/infer/{key}.json: record_sha256 does not match" in output and "--partial" in output
    assert (results / "report" / "summary.md").read_text() == before   # nothing written
    output = _errors(_run("figures", "--results", results, "--data-dir", tmp_path / "no-data"))
    assert f"jobs/infer/{key}.json" in output and not (results / "figures").exists()
    result = _run("figures", "--results", results, "--data-dir", tmp_path / "no-data", "--only", "ta_hfo2")
    assert result.exit_code == 0, result.output   # a device figure reads no record

    output = _errors(_run("report", "--results", results, "--partial"))
    assert "written from partial results" in output
    text = (results / "report" / "summary.md").read_text()
    assert f"`jobs/infer/{key}.json` (infer stuck_off -> stuck_off): record_sha256 does not match" in text
    assert "| stuck at G_off, aware | stuck at G_off 5 % | 0 of 2 * |" in text
    row = next(line for line in text.splitlines() if line.startswith("| stuck at G_off 5 % |"))
    assert row.endswith("| – * / 5.3 |  |")   # the edited 0.1 % is not used
    output = _errors(_run("figures", "--results", results, "--data-dir", tmp_path / "no-data", "--partial",
                          "--only", "error_vs_power"))
    assert "partial error_vs_power: stuck_off → stuck_off: n = 0 of 2" in output
    assert "1 figure(s) drawn from partial results, marked in red: error_vs_power" in output
    assert (results / "figures" / "error_vs_power_stuck_off.png").is_file()


def test_missing_weights_are_named_and_partial_figures_carry_a_red_note(results, tmp_path, monkeypatch):
    key = _job(results, "train", "d2d_high")
    (results / "jobs" / "train" / f"{key}.npz").unlink()
    output = _errors(_run("report", "--results", results))
    assert f"jobs/train/{key}.json: its weights file {key}.npz is missing" in output
    from memnp.plotting import draw_all, style
    texts = {}

    def keep(fig, target, fmt):
        texts[target.name] = [t.get_text() for t in fig.texts]
    monkeypatch.setattr(style, "_atomic_savefig", keep)
    drawn = draw_all(results, tmp_path / "figs", tmp_path / "no-data", only=["training_curves"], partial=True)
    assert drawn.partial == {"training_curves": ["d2d_high: 0 of 1 networks"]}
    assert texts["training_high_d2d.png"] == ["Partial results: d2d_high: 0 of 1 networks"]
    assert texts["training_stuck_off.png"] == []   # a complete simulation's figure is not marked
    from memnp.plotting.loaders import ResultsView
    view = ResultsView(results)
    assert view.conductances("d2d_high") is None and view.conductances("stuck_off") is not None
    assert view.notes == ["d2d_high: network 0 missing or corrupt"]


def test_a_run_of_one_simulation_redraws_all_and_removes_what_no_longer_belongs(results, tmp_path):
    stale = [results / "report" / "drift.csv", results / "figures" / "training_drift.png",
             results / "figures" / "training_drift.pdf", results / "figures" / "error_vs_power_combined.png"]
    results.joinpath("figures").mkdir()
    for path in stale:
        path.write_text("from an earlier run\n")
    (results / "figures" / "notes.txt").write_text("the user's\n")
    result = _run("figures", "--results", results, "--data-dir", tmp_path / "no-data", "--only", "robustness")
    assert result.exit_code == 0 and "figure 1/1: robustness" in result.output, result.output
    assert all(path.exists() for path in stale)   # --only draws a part: nothing is removed
    result = _run("reproduce", *TINY, "--only", "stuck_off", "--out", results, "--data-dir", tmp_path / "no-data")
    assert result.exit_code == 0, result.output
    assert "0 jobs computed, 4 reused" in result.output
    assert "figure 1/13: siox_iv\n" in result.output and "figure 13/13: line_resistance\n" in result.output
    text = (results / "report" / "summary.md").read_text()
    assert "## stuck_off" in text and "## high_d2d" in text
    figures = {p.name for p in (results / "figures").iterdir()}
    for stem in ("training_stuck_off", "training_high_d2d", "error_vs_power_stuck_off",
                 "error_vs_power_high_d2d", "robustness"):
        assert {stem + ".png", stem + ".pdf"} <= figures
    assert not any(path.exists() for path in stale) and "notes.txt" in figures
    assert f"removed {results / 'report' / 'drift.csv'}" in result.output

    # Another scale: the manifest starts afresh with stuck_off alone, and high_d2d's files go.
    result = _run("reproduce", *TINY, "--only", "stuck_off", "--epochs", "1", "--out", results,
                  "--data-dir", tmp_path / "no-data")
    assert result.exit_code == 0, result.output
    text = (results / "report" / "summary.md").read_text()
    assert "## stuck_off" in text and "## high_d2d" not in text
    figures = {p.name for p in (results / "figures").iterdir()}
    assert "training_stuck_off.png" in figures and not any("high_d2d" in name for name in figures)


def test_an_only_simulation_that_cannot_run_exits_1_after_the_rest(results, tmp_path, monkeypatch):
    real = datasource.resolve

    def no_cifar(family, data_dir=None, download=False):   # nothing is fetched
        if family == "cifar10":
            raise datasource.DataUnavailable("cifar10 is not available: the download failed (no network)")
        return real(family, data_dir, False)
    monkeypatch.setattr(datasource, "resolve", no_cifar)
    result = _run("reproduce", *TINY, "--only", "stuck_off", "--only", "iv_nonlinearity_cnn", "--out", results,
                  "--data-dir", tmp_path / "no-data", "--no-figures", "--download")
    output = _errors(result)
    assert "0 jobs computed, 4 reused" in output and "report: " in output
    assert "Error: asked for with --only but could not run: iv_nonlinearity_cnn (cifar10 not available" in output
    skip = next(line for line in output.splitlines() if line.startswith("skip:"))
    assert "--download" not in skip and skip.endswith("(the download did not succeed).")


def test_the_skip_line_suggests_download_only_when_it_was_not_given():
    reason = "cifar10 is not available: its files are missing from /data"
    assert skip_message("cifar10", reason, ["x"]).endswith("Use --data-dir DIR or --download.")
    assert "--download" not in skip_message("cifar10", reason, ["x"], download=True)


def test_the_end_of_reproduce_verifies_the_whole_directory(results, tmp_path):
    """A corrupt record of another simulation stops the report at the end of a run (this run's jobs
    are saved); --partial writes it marked and exits 1; rerunning that simulation repairs it."""
    key = _job(results, "infer", "d2d_high", "d2d_high")
    path = results / "jobs" / "infer" / f"{key}.json"
    path.write_text(path.read_text()[:-40])   # truncated
    args = ("reproduce", *TINY, "--out", results, "--data-dir", tmp_path / "no-data")
    output = _errors(_run(*args, "--only", "stuck_off"))
    assert f"jobs/infer/{key}.json: does not parse as JSON" in output and "This run's jobs are saved" in output
    output = _errors(_run(*args, "--only", "stuck_off", "--no-figures", "--partial"))
    assert "Error: the report was written from partial results (1 job file(s) missing or corrupt and 1 setup " \
           "pair(s) with fewer results than configured" in output
    assert "d2d_high -> d2d_high: 0 of 2 results" in (results / "report" / "summary.md").read_text()
    result = _run(*args, "--only", "high_d2d", "--no-figures")
    assert result.exit_code == 0 and "1 jobs computed, 3 reused" in result.output, result.output
    assert "Incomplete results" not in (results / "report" / "summary.md").read_text()
