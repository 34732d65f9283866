"""import memnp keeps glibc's malloc from trimming the heap between training steps."""
import os
import subprocess
import sys

import pytest

from memnp import allocator

# Allocate and free 300 kB arrays 200 times, then print the minor page faults that took.
PROBE = """
import resource, numpy as np
{setup}
for _ in range(20):
    a = np.ones(75_000, np.float32); b = np.ones(75_000, np.float32); del a, b
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    a = np.ones(75_000, np.float32); b = np.ones(75_000, np.float32); del a, b
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(setup, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], env=environ,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                    reason="glibc only")
def test_import_stops_page_faults_from_heap_trimming():
    plain = _faults("")
    assert plain > 100              # glibc's default: pages given back and faulted in again
    assert _faults("import memnp") < 10
    assert _faults("import memnp", MEMNP_MALLOC_TUNING="0") > 100
    assert _faults("import memnp", GLIBC_TUNABLES="glibc.malloc.check=0") > 100  # the user's choice stays


def test_opt_out_and_user_settings_are_respected():
    assert allocator.tune({"MEMNP_MALLOC_TUNING": "0"}) is False
    assert allocator.user_tunes_malloc({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"})
    assert allocator.user_tunes_malloc({"MALLOC_TRIM_THRESHOLD_": "1"})
    assert not allocator.user_tunes_malloc({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})
