// spmm-study's C entry point into Sputnik's fp32 CSR SpMM (this file is the project's own code; Sputnik's
// sources stay in the tree the user points to with SPMM_STUDY_SPUTNIK_SRC and are never copied).
// Built by spmm_study/gpu/sputnik.py with plain nvcc together with sputnik/spmm/cuda_spmm.cu.cc and
// called through ctypes with device pointers; every call runs on the stream passed in (0 = legacy default).
#include <cuda_runtime.h>

#include "sputnik/spmm/cuda_spmm.h"

extern "C" {

// Bumped when the signature below changes: a cached library with another number is rebuilt.
int spmm_study_sputnik_abi(void) { return 1; }

// C = A·B with A in CSR (row_offsets m+1, column_indices/values nnz), B k×n and C m×n row-major fp32.
// row_order: m row indices, the order in which Sputnik's thread blocks take rows (its "row swizzle").
// Returns a cudaError_t: 0 on success (the launch is asynchronous; errors of the kernel itself show later).
int spmm_study_sputnik_spmm(int m, int k, int n, int nnz, const int* row_order, const float* values,
                            const int* row_offsets, const int* column_indices, const float* b, float* c,
                            void* stream) {
  cudaError_t err = sputnik::CudaSpmm(m, k, n, nnz, row_order, values, row_offsets, column_indices, b, c,
                                      static_cast<cudaStream_t>(stream));
  if (err == cudaSuccess) err = cudaGetLastError();
  return static_cast<int>(err);
}

// The text of a cudaError_t, for the one-line message the project raises.
const char* spmm_study_sputnik_error(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // extern "C"
