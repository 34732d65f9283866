"""Helpers shared by the benchmarks: machine and version records, timing, tables, JSON output.

Import it from a benchmark script run as ``python bench/<name>.py`` (the script's directory is
on sys.path): ``from common import machine_info, time_calls, write_json``.
"""
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo on Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def simd_flags():
    """The SIMD instruction sets the CPU reports (Linux /proc/cpuinfo), e.g. ['avx2', 'avx512f']."""
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in present]
    except OSError:
        pass
    return []


def machine_info():
    """Platform, CPU model (and LLVM's name for it), SIMD flags, logical core count, usable cores,
    the load average (1, 5, 15 min) when measured (other processes make timings noisy), and the
    default kernel backend with its GPU ("gpu": None on the cpu backend)."""
    info = {"platform": platform.platform(), "cpu": cpu_model(), "simd": simd_flags(),
            "cores": os.cpu_count()}
    try:
        import llvmlite.binding
        info["llvm_cpu"] = llvmlite.binding.get_host_cpu_name()
    except Exception:  # llvmlite absent or unusable: the record just lacks the name
        pass
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    try:   # the kernel backend memnp uses by default here (MEMNP_BACKEND, `run.py bench --backend`) and its GPU
        from memnp.kernels.backend import backend_name, device_description
        info["backend"] = backend_name()
        info["gpu"] = device_description()
    except (ImportError, ValueError):   # memnp not importable, or MEMNP_BACKEND names no backend
        pass
    return info


def versions():
    """Versions of Python and of the numerical packages (those that are installed)."""
    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "numba", "llvmlite", "numba_cuda"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        out[name.replace("_", "-")] = getattr(module, "__version__", "?")
    return out


def thread_info():
    """Numba's thread count and threading layer, and the thread environment variables set."""
    import numba
    info = {"numba_threads": numba.get_num_threads()}
    try:
        info["threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        info["threading_layer"] = None
    for var in ("NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if var in os.environ:
            info[var] = os.environ[var]
    return info


def _cpu_times():
    """(busy, idle) jiffies summed over all CPUs, from /proc/stat (Linux)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)      # idle + iowait
    return sum(fields[:8]) - idle, idle


def idle_fraction(sample_s=2.0):
    """Fraction of the machine's CPU time that was idle over the next sample_s seconds
    (None where /proc/stat is unavailable)."""
    try:
        busy0, idle0 = _cpu_times()
        time.sleep(sample_s)
        busy1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    total = (busy1 - busy0) + (idle1 - idle0)
    return (idle1 - idle0) / total if total > 0 else None


def wait_for_idle(threshold=0.9, timeout_s=600.0, sample_s=2.0):
    """Wait until the machine is at least ``threshold`` idle (other processes distort timings,
    badly so for multithreaded kernels), or timeout_s passes. Returns the last idle fraction."""
    deadline = time.monotonic() + timeout_s
    while True:
        idle = idle_fraction(sample_s)
        if idle is None or idle >= threshold or time.monotonic() >= deadline:
            return idle


def time_calls(fn, repeats, budget_s=None, warmup=1, sync=None):
    """Wall times (s) of ``repeats`` calls of fn() after ``warmup`` untimed calls.

    Stops early once budget_s seconds of timed calls have passed (at least 3 calls run).
    sync, if given, is called after each call inside the timed region (e.g. a GPU synchronize).
    """
    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and len(times) >= 3 and time.perf_counter() - start > budget_s:
            break
    return times


def summarize(times):
    """{'median_s', 'min_s', 'repeats'} of a list of times."""
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}


def format_table(rows, columns):
    """A plain-text table of dict rows; columns is a list of (key, header, format)."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([("" if row.get(key) is None else fmt.format(row[key]))
                      for key, _, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows, columns):
    """The same table as :func:`format_table`, as a Markdown table."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(("" if row.get(key) is None else fmt.format(row[key]))
                                       for key, _, fmt in columns) + " |")
    return "\n".join(lines)


def write_json(path, data):
    """Write data as indented JSON to path atomically (temporary file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def bounded_int(low, high):
    """An argparse ``type``: an integer from low to high, else argparse's one-line error naming
    the option and the range (e.g. ``argument --threads: must be an integer from 1 to 1024; got '0'``)."""
    import argparse

    def parse(text):
        try:
            value = int(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}; got {text!r}")
        return value
    return parse


def int_list(low, high):
    """An argparse ``type``: comma-separated integers from low to high (at least one), else
    argparse's one-line error with the range."""
    import argparse

    def parse(text):
        try:
            values = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            values = []
        if not values or min(values) < low or max(values) > high:
            raise argparse.ArgumentTypeError(f"must be integers from {low} to {high}, comma-separated; got {text!r}")
        return values
    return parse


def name_list(choices):
    """An argparse ``type``: comma-separated names among ``choices`` (at least one), else
    argparse's one-line error naming them."""
    import argparse

    def parse(text):
        values = [part.strip() for part in text.split(",") if part.strip()]
        if not values or any(v not in choices for v in values):
            raise argparse.ArgumentTypeError(f"must be among {', '.join(choices)}, comma-separated; got {text!r}")
        return values
    return parse


def one_thread_defaults():
    """One Numba thread and one BLAS thread unless the environment says otherwise (as run.py: the
    MNIST matrix products are small). Call it before NumPy or Numba is imported."""
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def check_backend(parser, name, option="--backend"):
    """``parser.error`` (one line, exit status 2) unless kernel backend ``name`` (None: MEMNP_BACKEND
    or cpu) can run here: an unknown name, or cuda without numba-cuda, with the numba-cuda / numpy
    2.5 mismatch or without a GPU (the simulator counts). Returns the resolved name."""
    from memnp.kernels.backend import BackendUnavailable, require_backend
    try:
        return require_backend(name)
    except ValueError as exc:
        parser.error(f"argument {option}: {exc}")
    except BackendUnavailable as exc:
        parser.error(f"argument {option}: {exc}")


def gpu_name(backend=None):
    """The GPU a run on ``backend`` uses ("NVIDIA H200 (compute capability 9.0)", "CUDA simulator"),
    or None (cpu and numpy backends, or no usable GPU): memnp.kernels.backend.device_description."""
    from memnp.kernels.backend import device_description
    return device_description(backend)


def mnist_batches(count, batch=64):
    """(x (count, batch, 28, 28) float32 in [0, 1], labels (count, batch) int64): the first
    count * batch digits of memnp's embedded MNIST subset, as consecutive batches."""
    import numpy as np
    path = Path(__file__).resolve().parents[1] / "memnp" / "data" / "mnist-10k.npz"
    with np.load(path, allow_pickle=False) as data:
        x = (data["images"][:batch * count] / 255).astype(np.float32).reshape(count, batch, 28, 28)
        return x, data["labels"][:batch * count].astype(np.int64).reshape(count, batch)

