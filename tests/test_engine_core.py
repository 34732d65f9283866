"""The engine core's shape (issue 15, step 4): imports point down, the kernels hold no copy of the
phase table, no module branches on a backend's name, and a read's state is named."""
import re
from pathlib import Path

import numpy as np

from memnp.circuit.state import SolveState
from memnp.crossbar import CrossbarPass, Stage
from memnp.crossbar.simulate import ReadState
from memnp.crossbar.tiling import ArrayRead, ArraysRead
from memnp.kernels import get_backend
from memnp.nn import MemristiveDense, PassContext
from memnp.nn.reads import CrossbarRead, DigitalRead
from memnp.nonidealities import ADC, LineResistance, Tiles
from pipeline_stages import G_OFF, G_ON, PF, crossbar_inputs

ROOT = Path(__file__).resolve().parents[1] / "memnp"
IMPORT = re.compile(r"^\s*(?:from\s+(\.+\w*)|import\s+memnp\.(\w+))", re.M)


def _imports(package):
    """{module path: the memnp packages it imports (relative imports resolved one level)}."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        found = set()
        for relative, absolute in IMPORT.findall(path.read_text()):
            if absolute:
                found.add(absolute)
            elif relative.startswith("..") and not relative.startswith("..."):
                found.add(relative[2:] or "memnp")
            elif relative.startswith("..."):
                found.add(relative[3:] or "memnp")
        out[str(path.relative_to(ROOT))] = found
    return out


def test_imports_point_down():
    for module, found in _imports("kernels").items():
        assert not found & {"crossbar", "circuit", "nn", "data", "experiments"}, (module, found)
    for module, found in _imports("circuit").items():
        assert not found & {"crossbar", "nn", "data", "experiments"}, (module, found)


def test_no_copy_of_the_phase_table_and_no_branch_on_a_backend_name():
    names = ("D2DLognormal", "ProgrammingNoise", "Drift\"", "StuckAt", "ReadNoise\"", "IVNonlinearityPF",
             "__name__")
    for module in ("kernels/conductance_chain.py", "kernels/stage_draws.py"):
        text = (ROOT / module).read_text()
        assert not any(name in text for name in names), module
    branch = re.compile(r"""(==|!=|\bin)\s*\(?\s*["'](cpu|cuda|numpy)["']|__name__\s+in\s""")
    for path in ROOT.rglob("*.py"):
        relative = str(path.relative_to(ROOT))
        if relative.startswith(("experiments", "cli", "plotting")):
            continue
        assert not branch.search(path.read_text()), relative


def test_a_read_keeps_named_state(rng):
    stage = Stage(G_OFF, G_ON, 0.5, (PF, LineResistance(0.5, 0.5), ADC(6), Tiles(4, 4)))
    V, G = crossbar_inputs(rng, p=2, m=7, n=6)
    crossbar = CrossbarPass(stage, "numpy")
    crossbar.forward(V, G, np.random.default_rng(0))
    state = crossbar._cache
    assert isinstance(state, ReadState) and state.V is V and state.G is G
    assert state.draws is crossbar.draws and state.G_read is crossbar.read_conductances
    tiles = state.tiles
    assert isinstance(tiles, ArraysRead) and (tiles.m, tiles.n) == (7, 6)
    assert [(p.r0, p.r1, p.c0, p.c1) for p in tiles.parts] == [(0, 4, 0, 4), (0, 4, 4, 6), (4, 7, 0, 4),
                                                                (4, 7, 4, 6)]
    for part in tiles.parts:
        assert isinstance(part, ArrayRead) and isinstance(part.wires, SolveState)
        assert part.wires.backend is get_backend("numpy") and part.wires.report.converged
        assert part.I_raw.shape == (2, part.c1 - part.c0) and part.full_scale > 0
    assert len(crossbar.wire_reports()) == 4


def test_a_layer_keeps_a_named_read(rng):
    layer = MemristiveDense(3, 2, "standard", dtype="float64")
    layer.initialize(np.random.default_rng(0))
    x = rng.random((4, 3))
    layer.forward(x, PassContext(Stage(G_OFF, G_ON), None, "numpy"))
    assert isinstance(layer._last, DigitalRead) and layer._last.x is x
    layer.forward(x, PassContext(Stage(G_OFF, G_ON, 0.5, (PF,)), np.random.default_rng(1), "numpy"))
    last = layer._last
    assert isinstance(last, CrossbarRead) and last.rows is None and last.crossbar.backend is get_backend("numpy")
    assert last.I.shape == (4, 4) and last.M.shape == (4, 2)
