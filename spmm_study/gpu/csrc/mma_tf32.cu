// Tensor-core multiply-add for GPU rung 22 (spmm_study/gpu/k22_csr_tc_window.py): numba-cuda cannot emit
// mma.sync, so these two device functions are compiled by NVRTC and linked into the numba kernel
// (cuda.declare_device(..., link=[this file])). Numba's calling convention: the first parameter points to
// the return value (here four floats: the lane's D fragment), the int returned is a status (0 = ok).
//
// One warp-wide mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: D(16x8) = A(16x8) * B(8x8) + C(16x8).
// Fragments per lane (g = lane / 4, t = lane % 4), as in the PTX ISA for m16n8k8 .tf32:
//   A: a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
//   B: b0 = B[t][g], b1 = B[t+4][g]
//   C, D: c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
// Inputs are fp32; they are rounded to TF32 (cvt.rna: nearest, ties away from zero) before the mma.

struct Frag4 { float x, y, z, w; };

__device__ __forceinline__ unsigned tf32(float x) {
  unsigned u;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(x));
  return u;
}

__device__ __forceinline__ void mma(float d[4], const unsigned a[4], const unsigned b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Plain TF32: one mma (error ~2^-11 relative per input, fp32 accumulation).
extern "C" __device__ int spmm_mma_tf32(Frag4* ret, float a0, float a1, float a2, float a3, float b0, float b1,
                                        float c0, float c1, float c2, float c3) {
  unsigned a[4] = {tf32(a0), tf32(a1), tf32(a2), tf32(a3)};
  unsigned b[2] = {tf32(b0), tf32(b1)};
  float d[4] = {c0, c1, c2, c3};
  mma(d, a, b);
  *ret = Frag4{d[0], d[1], d[2], d[3]};
  return 0;
}

// 3xTF32: x = hi + lo with hi = tf32(x), lo = tf32(x - hi); A·B ~ hi·hi + hi·lo + lo·hi (lo·lo dropped), the
// small products first: fp32-level accuracy for three mma instead of one.
extern "C" __device__ int spmm_mma_3xtf32(Frag4* ret, float a0, float a1, float a2, float a3, float b0, float b1,
                                          float c0, float c1, float c2, float c3) {
  const float av[4] = {a0, a1, a2, a3};
  const float bv[2] = {b0, b1};
  unsigned ah[4], al[4], bh[2], bl[2];
  for (int i = 0; i < 4; ++i) { ah[i] = tf32(av[i]); al[i] = tf32(av[i] - __uint_as_float(ah[i])); }
  for (int i = 0; i < 2; ++i) { bh[i] = tf32(bv[i]); bl[i] = tf32(bv[i] - __uint_as_float(bh[i])); }
  float d[4] = {c0, c1, c2, c3};
  mma(d, al, bh);
  mma(d, ah, bl);
  mma(d, ah, bh);
  *ret = Frag4{d[0], d[1], d[2], d[3]};
  return 0;
}
