"""Build (or find) the cached Sputnik library for sm_90 and print its path (no GPU needed, nvcc needed).

    SPMM_STUDY_SPUTNIK_SRC=../shared/third_party/sputnik PYTHONPATH=. python experiments/build_sputnik.py build

Used before a device call whose machine may lack nvcc: copy the printed library into the tree (an ignored
path such as .sputnik/) and set SPMM_STUDY_SPUTNIK_LIB to it there. See spmm_study/gpu/sputnik.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spmm_study.gpu import sputnik  # noqa: E402

if __name__ == "__main__":
    sys.exit(sputnik.main(sys.argv[1:]))
