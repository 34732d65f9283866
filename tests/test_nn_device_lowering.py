"""The kernels of memnp.kernels.cuda_step type-check and lower with the real numba-cuda compiler,
without a GPU: the CUDA simulator runs kernels as Python and so never checks their types (a
float64 promotion in a float32 kernel, an unsupported call). In a subprocess (it patches numba's
device look-ups): DeviceTrainer's train_step and train_epoch are run with host arrays standing in
for device arrays, and every kernel launch is compiled to LLVM IR for compute capability 9.0 with
the argument types it got; float32 kernels must call only float32 libdevice math. The PF-only
stage, the combined stage (case e: memnp.kernels.cuda_phases, memnp.kernels.cuda_read) and a
trainer mixing case e with its linear twin (tests/test_nn_device_linear.py) and one mixing the
tahfo2 stage (StuckDistribution: memnp.kernels.cuda_stuck) with that twin run, and the
evaluation's power kernels (memnp.kernels.cuda_eval) are lowered too.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'memnp[cuda]')")

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = textwrap.dedent('''
    import re
    import sys
    import types
    import numpy as np
    import numba
    from numba import cuda
    try:
        import numba.cuda.dispatcher as dispatcher
        from numba.cuda.compiler import compile_cuda
        from numba.cuda.cudadrv import nvrtc
    except ImportError as exc:
        print("SKIP numba-cuda internals moved:", exc)
        sys.exit(0)
    nvrtc.get_supported_ccs = lambda: ((9, 0),)
    nvrtc.get_lowest_supported_cc = lambda: (9, 0)
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))
    cuda.is_available = lambda: True
    cuda.to_device = lambda a, *args, **kwargs: np.array(a)
    cuda.device_array = lambda shape, dtype=np.float64, **kwargs: np.zeros(shape, dtype)
    import memnp.kernels.cuda as kc
    kc._DEVICE_OK = True
    from memnp.kernels import cuda_step as ks
    from memnp.nn import device
    sys.path.insert(0, sys.argv[1])
    import test_nn_device as t

    compiled = {}

    class Launch:
        def __init__(self, name, dtype, kernel):
            self.name, self.dtype, self.kernel = name, dtype, kernel

        def __getitem__(self, config):
            return self

        def __call__(self, *args):
            sig = tuple(numba.typeof(a) for a in args)
            if (self.name, sig) not in compiled:
                ir = compile_cuda(self.kernel.py_func, numba.types.void, sig, cc=(9, 0)).library.get_llvm_str()
                calls = set(re.findall(r'@"?(__nv_[a-z0-9_]+)"?\\(', ir))
                if self.dtype == "float32" and self.name in ("forward", "inputs_vjp", "devices_vjp"):
                    wide = sorted(c for c in calls if not c.endswith("f") and c != "__nv_fmul_rn")
                    assert not wide, (self.name, wide)
                    assert any(c.startswith("__nv_exp") for c in calls), (self.name, calls)
                compiled[(self.name, sig)] = True

    for dtype in ("float32", "float64"):
        table = ks.kernels(dtype)
        for name in list(table):
            table[name] = Launch(name, dtype, table[name])

    class Stop(Exception):
        pass

    def finish(self, rngs, state, record, steps, sizes):
        for l, D in enumerate(self.D):
            self._kernels["weights_sum"][1, 1](D, record, 2 + 2 * steps, l > 0)
        self._kernels["finish"][1, 1](state, record)
        raise Stop

    device.DeviceTrainer._finish = finish
    import test_nn_device_stage as ts
    import test_nn_device_standard as tw
    import test_nn_device_linear as tl
    from memnp.kernels import cuda_eval
    for dtype in ("float32", "float64"):
        table = cuda_eval.kernels(dtype)
        for name in ("power_terms", "power_sum"):
            table[name] = Launch(name, dtype, table[name])
    from memnp.experiments import registry
    pairs = [(None, None), (ts.combined(), ts.combined()), (ts.combined(), tl.linear()),
             (registry.device_stage("tahfo2"), tl.linear()), ("standard", "standard")]
    for dtype, (first, second) in [(d, s) for d in ("float32", "float64") for s in pairs]:
        if isinstance(first, str):
            members = [tw.standard_mlp(dtype, "default", seed=1), tw.standard_mlp(dtype, "avg", seed=2)]
        else:
            members = [t.mlp(dtype, seed=1, stage=first), t.mlp(dtype, seed=2, stage=second)]
        trainer = device.DeviceTrainer(members, batch_size=8)
        x, y = t.batches(1, dtype=dtype)[0]
        rngs = [np.random.default_rng(1), np.random.default_rng(2)]
        for run in (lambda: trainer.train_step(x, y, rngs), lambda: trainer.train_epoch(rngs, batch_size=8)):
            try:
                run()
            except Stop:
                pass
            if trainer.pool is None:
                trainer.set_data(*t.pool(16))
        B, c = 8, trainer.I[0].shape[2]
        terms = np.zeros((2, B, c))
        cuda_eval.kernels(dtype)["power_terms"][1, 1](trainer.x[0], B, trainer.rank[0], trainer.dev[0]["c"],
                                                      trainer.dev[0]["KK"], trainer.P, terms)
        cuda_eval.kernels(dtype)["power_sum"][2, 1](terms, B, np.zeros((2, 1)), 0, False)
    names = {name for name, _ in compiled}
    print("LOWERED", len(compiled), sorted(names))
''')


def test_kernels_lower_with_the_real_compiler():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    out = subprocess.run([sys.executable, "-c", PROGRAM, str(ROOT / "tests")], capture_output=True, text=True,
                         env=env, timeout=600)
    if out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout.strip())
    assert out.returncode == 0, out.stderr[-3000:]
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("LOWERED")
    for name in ("gather", "take_labels", "stats_scan", "devices", "forward", "loss", "outputs_vjp",
                 "inputs_vjp", "devices_vjp", "tie_share", "update", "weights_sum", "finish", "standard_vjp",
                 "power_terms", "power_sum", "stuck_counts", "stuck_starts"):
        assert f"'{name}'" in line, line
