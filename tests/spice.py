"""ngspice netlists of a crossbar with line resistance (the validation tests' second opinion).

Topology of memnp.circuit.network: word line i driven at its left end by V[i] through r_word,
r_word between columns; bit line j with r_bit between rows and r_bit from the last row into a 0 V
source (the sense amplifier, whose current is the output I[j]). Linear devices are resistors 1 / G;
PF devices behavioural current sources B = c v exp(sqrt(K |v| + A**2 EPS)), K = A**2 B / d_eps,
with memnp's constants. One ``ngspice -b`` run per example (operating point)."""
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from memnp.kernels.physics import A2_B, A2_EPS

NGSPICE = shutil.which("ngspice")


def netlist(V, G, r_word, r_bit, devices=None):
    """The netlist text for one example: V (m,) volts, G (m, n) siemens or devices (c, d_eps)."""
    m, n = np.shape(G) if devices is None else np.shape(devices[0])
    f = "{:.17g}".format
    lines = ["* memnp crossbar with line resistance"]
    for i in range(m):
        lines.append(f"Vd{i} d{i} 0 DC {f(V[i])}")
        for j in range(n):
            left = f"d{i}" if j == 0 else f"w{i}_{j - 1}"
            lines.append(f"Rw{i}_{j} {left} w{i}_{j} {f(r_word)}")
            below = f"s{j}" if i == m - 1 else f"b{i + 1}_{j}"
            lines.append(f"Rb{i}_{j} b{i}_{j} {below} {f(r_bit)}")
            if devices is None:
                lines.append(f"Rd{i}_{j} w{i}_{j} b{i}_{j} {f(1.0 / G[i, j])}")
            else:
                c, K = devices[0][i, j], A2_B / devices[1][i, j]
                vd = f"V(w{i}_{j},b{i}_{j})"
                law = f"{f(c)}*{vd}*exp(sqrt({f(K)}*abs({vd})+{f(A2_EPS)}))"
                lines.append(f"Bd{i}_{j} w{i}_{j} b{i}_{j} I={law}")
    for j in range(n):
        lines.append(f"Vs{j} s{j} 0 DC 0")
    lines += [".options reltol=1e-12 abstol=1e-24 vntol=1e-15 itl1=500",
              ".control", "set numdgt=16", "op"]
    lines += [f"print i(vs{j})" for j in range(n)]
    lines += [".endc", ".end"]
    return "\n".join(lines) + "\n"


def currents(V, G, r_word, r_bit, devices=None, timeout=60):
    """I (p, n) in A from ngspice, one run per example of V (p, m)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for e, row in enumerate(np.atleast_2d(V)):
            path = Path(tmp) / f"x{e}.cir"
            path.write_text(netlist(row, G, r_word, r_bit, devices))
            run = subprocess.run([NGSPICE, "-b", str(path)], capture_output=True, text=True,
                                 timeout=timeout)
            text = run.stdout      # (the exit status is 1 after a .control run: not an error)
            values = dict(re.findall(r"i\(vs(\d+)\)\s*=\s*([-+0-9.eE]+)", text))
            n = len(values)
            if n == 0 or "rror" in run.stderr + text:
                raise RuntimeError(f"ngspice failed ({run.returncode}):\n"
                                   f"{run.stderr[-2000:]}\n{text[-2000:]}")
            out.append([float(values[str(j)]) for j in range(n)])
    return np.array(out)
