"""Helpers of the CLI tests: run a command in-process and check a one-line error."""
from click.testing import CliRunner

from memnp.cli import cli


def run_cli(*args):
    """The result of ``memnp ARGS`` run in-process (arguments as strings; exceptions propagate)."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result, *needles):
    """A non-zero exit with one ``Error:`` line naming every needle, and no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert str(needle) in errors[0], result.output
