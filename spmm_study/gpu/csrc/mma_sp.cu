// Sparse tensor-core multiply-add for GPU rung 23 (spmm_study/gpu/k23_nm24_mma_sp.py): numba-cuda cannot emit
// mma.sp, so these device functions are compiled by NVRTC and linked into the numba kernel
// (cuda.declare_device(..., link=[this file])), as rung 22 links mma.sync. Numba's calling convention: the first
// parameter points to the return value (four floats: the lane's D fragment), the int returned is a status.
//
// One warp-wide mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32:
// D(16x8) = A(16x16, 2:4 sparse) * B(16x8) + C(16x8), A given as its 16x8 compressed values plus metadata.
// Fragments per lane (g = lane / 4, t = lane % 4), as in the PTX ISA for sparse m16n8k16 .f16/.bf16:
//   A (compressed, 2 registers of 2 halves): a0 = {A'[g][2t], A'[g][2t+1]}, a1 = {A'[g+8][2t], A'[g+8][2t+1]}
//      where A' column 2j, 2j+1 are the two kept values of group j (columns 4j..4j+3) of the row: lane t holds
//      group t of its two rows
//   B (2 registers of 2 halves): b0 = {B[2t][g], B[2t+1][g]}, b1 = {B[2t+8][g], B[2t+9][g]}
//   C, D (fp32): c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
//   E (metadata, sparsity selector 0: the first lane of each group of four supplies it): bits 0..15 for row g,
//      16..31 for row g+8; in each half group j's two 2-bit positions (0..3) in bits 4j..4j+3, first in the
//      low pair, first < second. That is the project's 2:4 format's metadata byte pair (formats.NM24).
// All values are raw 32-bit registers: numba passes the packed halves as uint32, so one file serves fp16 and bf16.

struct Frag4 { float x, y, z, w; };

// The two element types differ only in the instruction's type suffix, so one macro writes both functions;
// TYPE is pasted into the PTX string (#TYPE is "f16" or "bf16").
#define SPMM_MMA_SP(NAME, TYPE)                                                                                  \
  extern "C" __device__ int NAME(Frag4* ret, unsigned a0, unsigned a1, unsigned b0, unsigned b1, unsigned e,    \
                                 float c0, float c1, float c2, float c3) {                                      \
    float d0 = c0, d1 = c1, d2 = c2, d3 = c3;                                                                   \
    asm volatile(                                                                                               \
        "mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32." #TYPE "." #TYPE ".f32 "                   \
        "{%0,%1,%2,%3}, {%4,%5}, {%6,%7}, {%0,%1,%2,%3}, %8, 0x0;"                                              \
        : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)                                                                \
        : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(e));                                                          \
    *ret = Frag4{d0, d1, d2, d3};                                                                               \
    return 0;                                                                                                   \
  }

SPMM_MMA_SP(spmm_mma_sp_f16, f16)
SPMM_MMA_SP(spmm_mma_sp_bf16, bf16)
