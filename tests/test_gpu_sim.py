"""Every GPU rung, in the numba CUDA simulator, on tiny edge matrices (CPU-only CI).

The simulator must be switched on before numba.cuda is first imported, and the CPU tests of the same
pytest run must not see it: so each variant runs in its own subprocess with NUMBA_ENABLE_CUDASIM=1, through
``spmm-study check -v ID`` — the small configurations each rung declares next to its Params (``sim=``: tails,
several blocks, split rows, several K-tiles). The registry refuses a GPU rung without them, so a new kernel
cannot go untested; the cases are taken from the registry here, never listed twice.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda")

from spmm_study import edge, registry  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNGS = [v for v in registry.select(device="gpu") if not v.baseline]


def test_every_rungs_cases_name_real_matrices_and_params():
    mats = edge.all_matrices()
    for v in RUNGS:
        assert len(edge.cases_for(v)) >= 2, v.id
        for params, names, ns, *_ in v.sim:
            v.resolve_params(params)  # unknown names or bad values raise
            assert set(names) <= set(mats), f"{v.id}: unknown matrices {set(names) - set(mats)}"
            assert ns and all(n >= 1 for n in ns), v.id
            assert any(v.accepts(mats[name]) for name in names), f"{v.id}: none of {names} is accepted"


@pytest.mark.parametrize("vid", [v.id for v in RUNGS])
def test_variant_in_simulator(vid):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(HERE.parent))
    proc = subprocess.run([sys.executable, "-m", "spmm_study", "check", "-v", vid], capture_output=True, text=True,
                          env=env, timeout=600, cwd=HERE.parent)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    cases = edge.cases_for(registry.get(vid))
    assert proc.stdout.count("PASS  ") == len(cases), proc.stdout


def test_gpu_variants_listed_unavailable_without_gpu():
    """On a machine with no GPU, list shows the reason, and run --device gpu exits 2 with one line."""
    from spmm_study.gpu.device import gpu_unavailable_reason

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0") or gpu_unavailable_reason() is None:
        pytest.skip("this machine has a GPU (or the simulator): the no-GPU path cannot be shown here")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-m", "spmm_study", "run", "--device", "gpu", "--variant", "swizzle",
                           "--no-save"], capture_output=True, text=True, env=env, timeout=300, cwd=HERE.parent)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "no CUDA device" in lines[0], lines
    proc = subprocess.run([sys.executable, "-m", "spmm_study", "list", "--device", "gpu"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=HERE.parent)
    assert proc.returncode == 0 and "unavailable" in proc.stdout and "gpu.csr.swizzle" in proc.stdout


def test_the_simulator_is_named_where_a_gpu_would_be(monkeypatch):
    """Tables and result rows name the machine: under the simulator that is the simulator, not "no GPU" (which
    said the opposite of what ran) and not a real card's name."""
    from spmm_study import environment
    from spmm_study.gpu import device

    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    device.gpu_unavailable_reason.cache_clear()
    try:
        if device.gpu_unavailable_reason() is not None:
            pytest.skip(device.gpu_unavailable_reason())
        assert "simulator" in environment.machine_label("gpu") and environment.gpu_info()["simulator"] is True
    finally:
        device.gpu_unavailable_reason.cache_clear()
