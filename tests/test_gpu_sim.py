"""Every GPU rung, in the numba CUDA simulator, on tiny edge matrices (CPU-only CI).

The simulator must be switched on before numba.cuda is first imported, and the CPU tests of the same
pytest run must not see it: so each variant runs in its own subprocess with NUMBA_ENABLE_CUDASIM=1
(``tests/gpu_sim_cases.py`` holds the cases: small params so tails, several blocks, split rows and
several K-tiles are exercised). A variant added to the registry without cases fails ``test_every_rung_has_cases``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gpu_sim_cases import CASES  # noqa: E402


def test_every_rung_has_cases():
    from spmm_study import registry

    own = {v.id for v in registry.select(device="gpu") if not v.baseline}
    assert own == set(CASES), f"GPU variants without simulator cases: {sorted(own - set(CASES))}"


@pytest.mark.parametrize("vid", sorted(CASES))
def test_variant_in_simulator(vid):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, str(HERE / "gpu_sim_cases.py"), vid], capture_output=True, text=True,
                          env=env, timeout=600, cwd=HERE.parent)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.stdout.count(": ok") >= 2, proc.stdout


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
