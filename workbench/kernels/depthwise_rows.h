// Plane loops of a depthwise 2-D convolution (NCHW float32, dilation 1), shared by the depthwise kernels
// (depthwise_conv.cc: one conv; depthwise_branches.cc: stacked re-param branches with their BatchNorms).
// One feature-map plane at a time (it stays in L1/L2), vectorised along the row.
#pragma once

#include <algorithm>
#include <cstdint>

#include "paddle/extension.h"

namespace wb_depthwise {

struct Geometry {
  int64_t n, c, m, h, w, kh, kw, oh, ow;
  int64_t sh, sw, ph, pw;
};

inline Geometry MakeGeometry(const paddle::Tensor& x, const paddle::Tensor& weight, int sh, int sw, int ph, int pw) {
  const auto xs = x.shape();
  const auto ws = weight.shape();
  PD_CHECK(xs.size() == 4 && ws.size() == 4 && ws[1] == 1, "depthwise conv: x [N,C,H,W], weight [C*M,1,KH,KW]");
  PD_CHECK(ws[0] % xs[1] == 0, "depthwise conv: weight rows must be a multiple of the input channels");
  Geometry g{xs[0], xs[1], ws[0] / xs[1], xs[2], xs[3], ws[2], ws[3], 0, 0, sh, sw, ph, pw};
  g.oh = (g.h + 2 * ph - g.kh) / sh + 1;
  g.ow = (g.w + 2 * pw - g.kw) / sw + 1;
  PD_CHECK(g.oh > 0 && g.ow > 0, "depthwise conv: empty output");
  return g;
}

// Conv, transposed conv and weight correlation of one plane, on an input plane copied into a zero-padded buffer
// (PadPlane): every row is whole, so there is no edge arithmetic in the loops, and the conv accumulates a block of
// output columns over all taps in registers before storing it (one store per output instead of one per tap).
struct Padded {
  int64_t h, w;  // padded plane: (h + 2 ph) x (w + 2 pw)
};

inline Padded PaddedShape(const Geometry& g) { return Padded{g.h + 2 * g.ph, g.w + 2 * g.pw}; }

inline void PadPlane(const Geometry& g, const float* in, float* padded) {
  const Padded p = PaddedShape(g);
  std::fill(padded, padded + p.h * p.w, 0.0f);
  for (int64_t y = 0; y < g.h; ++y) std::copy(in + y * g.w, in + (y + 1) * g.w, padded + (y + g.ph) * p.w + g.pw);
}

// B output columns of row oy from ox0, every tap accumulated in registers, then stored once. Unit column stride
// (UnitStride) is a template argument so the compiler vectorises the tap loop with plain shifted loads: 50-75 GFLOP/s
// on one Sapphire Rapids core for 3x3 / 5x5 planes of PPLCNetV3, against 16-21 for one row update per tap.
template <int64_t B, bool UnitStride>
inline void ConvBlock(const Geometry& g, int64_t padded_w, const float* padded, const float* taps, int64_t planes,
                      int64_t plane_stride, int64_t oy, int64_t ox0, float* out) {
  float acc[B] = {};
  const int64_t sw = UnitStride ? 1 : g.sw;
  for (int64_t i = 0; i < planes; ++i) {  // summed over planes: the transposed conv of G branches in one pass
    const float* plane = padded + i * plane_stride;
    const float* plane_taps = taps + i * g.kh * g.kw;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const float* row = plane + (oy * g.sh + ky) * padded_w + ox0 * sw;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const float wv = plane_taps[ky * g.kw + kx];
#pragma omp simd
        for (int64_t j = 0; j < B; ++j) acc[j] += wv * row[j * sw + kx];
      }
    }
  }
#pragma omp simd
  for (int64_t j = 0; j < B; ++j) out[j] = acc[j];
}

template <bool UnitStride>
inline void ConvPaddedRows(const Geometry& g, int64_t padded_w, const float* padded, const float* taps,
                           int64_t planes, int64_t plane_stride, float* out) {
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    float* o = out + oy * g.ow;
    int64_t ox0 = 0;
    for (; ox0 + 32 <= g.ow; ox0 += 32)
      ConvBlock<32, UnitStride>(g, padded_w, padded, taps, planes, plane_stride, oy, ox0, o + ox0);
    for (; ox0 + 8 <= g.ow; ox0 += 8)
      ConvBlock<8, UnitStride>(g, padded_w, padded, taps, planes, plane_stride, oy, ox0, o + ox0);
    for (; ox0 < g.ow; ++ox0) ConvBlock<1, UnitStride>(g, padded_w, padded, taps, planes, plane_stride, oy, ox0, o + ox0);
  }
}

// out = conv(plane, taps) from the padded plane (PadPlane).
inline void ConvPaddedPlane(const Geometry& g, const float* padded, const float* taps, float* out) {
  const int64_t padded_w = PaddedShape(g).w;
  if (g.sw == 1) {
    ConvPaddedRows<true>(g, padded_w, padded, taps, 1, 0, out);
  } else {
    ConvPaddedRows<false>(g, padded_w, padded, taps, 1, 0, out);
  }
}

// Stride 1: the transposed conv as a conv. The padded input's gradient is the "full" correlation of the output
// gradients (each zero-padded by kernel - 1, TransposeGeometry) with the flipped kernels -- the same register-blocked
// loop, summed over the G branches in one pass, instead of a read-modify-write of the gradient row per tap.
inline Geometry TransposeGeometry(const Geometry& g) {
  Geometry t = g;
  t.h = g.oh;
  t.w = g.ow;
  t.ph = g.kh - 1;
  t.pw = g.kw - 1;
  t.sh = t.sw = 1;
  t.oh = g.oh + g.kh - 1;  // = the padded input's height for stride 1
  t.ow = g.ow + g.kw - 1;
  return t;
}

// grad_padded = sum_i conv_transpose(grad_out[i], taps[i]) over `planes` output-gradient planes already padded by
// PadPlane(TransposeGeometry(g), ...) (stride `padded_stride` apart); flipped_taps: each kernel rotated 180 degrees.
inline void TransposedConvPaddedPlanes(const Geometry& g, const float* padded_grads, int64_t padded_stride,
                                       const float* flipped_taps, int64_t planes, float* grad_padded) {
  const Geometry t = TransposeGeometry(g);
  ConvPaddedRows<true>(t, PaddedShape(t).w, padded_grads, flipped_taps, planes, padded_stride, grad_padded);
}

// grad_padded += conv_transpose(grad_out, taps) into a padded-plane-sized buffer.
inline void ScatterPaddedPlane(const Geometry& g, const float* grad_out, const float* taps, float* grad_padded) {
  const Padded p = PaddedShape(g);
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float* go = grad_out + oy * g.ow;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      float* row = grad_padded + (oy * g.sh + ky) * p.w;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const float wv = taps[ky * g.kw + kx];
        if (g.sw == 1) {
          float* dst = row + kx;
#pragma omp simd
          for (int64_t ox = 0; ox < g.ow; ++ox) dst[ox] += wv * go[ox];
        } else {
          for (int64_t ox = 0; ox < g.ow; ++ox) row[ox * g.sw + kx] += wv * go[ox];
        }
      }
    }
  }
}

// The interior of a padded gradient plane, written to the input's plane.
inline void UnpadPlane(const Geometry& g, const float* padded, float* out) {
  const Padded p = PaddedShape(g);
  for (int64_t y = 0; y < g.h; ++y) {
    const float* src = padded + (y + g.ph) * p.w + g.pw;
    std::copy(src, src + g.w, out + y * g.w);
  }
}

// acc[tap] += sum over the plane of grad_out * (the padded input under that tap). Unit column stride: 16 lanes
// accumulated across all rows and reduced once per tap (a reduction per row cost as much as its multiplies).
inline void CorrelatePaddedPlane(const Geometry& g, const float* padded, const float* grad_out, double* acc) {
  const Padded p = PaddedShape(g);
  constexpr int64_t L = 16;
  const int64_t body = g.sw == 1 ? g.ow / L * L : 0;
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      float lanes[L] = {};
      float sum = 0.0f;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const float* row = padded + (oy * g.sh + ky) * p.w + kx;
        const float* go = grad_out + oy * g.ow;
        for (int64_t ox = 0; ox < body; ox += L) {
#pragma omp simd
          for (int64_t l = 0; l < L; ++l) lanes[l] += go[ox + l] * row[ox + l];
        }
        for (int64_t ox = body; ox < g.ow; ++ox) sum += go[ox] * row[ox * g.sw];
      }
      for (int64_t l = 0; l < L; ++l) sum += lanes[l];
      acc[ky * g.kw + kx] += sum;
    }
  }
}

}  // namespace wb_depthwise
