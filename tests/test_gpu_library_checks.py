"""The vendor baselines re-validate A before cuSPARSE sees it (no GPU needed for this part)."""

import numpy as np
import pytest

from spmm_study import formats
from spmm_study.errors import FormatError, ResourceError
from spmm_study.formats import CSR
from spmm_study.gpu.baselines import check_csr_for_library


def test_out_of_range_index_never_reaches_the_library():
    # built without validate(): what a bug upstream could hand over
    bad = CSR((2, 3), np.array([0, 1, 2], np.int32), np.array([0, 3], np.int32), np.ones(2, np.float32))
    with pytest.raises(FormatError, match="column index 3 in row 1 is out of range for 3 columns"):
        check_csr_for_library(bad)


def test_unsorted_row_never_reaches_the_library():
    bad = CSR((1, 4), np.array([0, 2], np.int32), np.array([2, 1], np.int32), np.ones(2, np.float32))
    with pytest.raises(FormatError, match="not sorted"):
        check_csr_for_library(bad)


def test_indices_that_would_wrap_in_int32_are_refused(monkeypatch):
    a = CSR.from_dense(np.eye(20, dtype=np.float32))
    monkeypatch.setattr(formats, "INT32_MAX", 10)
    with pytest.raises(ResourceError, match="does not fit int32"):
        check_csr_for_library(a)
    ok = check_csr_for_library(a, np.int64)
    assert ok.indices.dtype == np.int64 and np.array_equal(ok.indices, np.arange(20))
