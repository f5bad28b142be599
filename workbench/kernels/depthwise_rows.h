// Plane loops of a depthwise 2-D convolution (NCHW float32, dilation 1), shared by the depthwise kernels
// (depthwise_conv.cc: one conv; depthwise_branches.cc: stacked re-param branches with their BatchNorms) and by
// the dense conv's weight gradient (dense_conv.cc: one correlation per input / output plane pair).
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

// How a padded plane is stored. Column stride 2 reads every other column, which does not vectorise (PPLCNetV3's
// 3x3 stride-(1, 2) layer at rec batch 32: 67 ms forward, 95-105 ms backward, 2.6x its stride-1 neighbour): its
// padded planes are stored as two column phases (even columns, then odd ones), so that output column ox under tap
// kx reads phase kx % 2 at ox + kx / 2 -- unit stride again (that layer's backward 96 -> 34 ms). Other strides:
// plain rows, strided access.
struct Layout {
  int64_t phases;  // 1, or 2 for column stride 2
  int64_t w;       // stored row length (of one phase)
  int64_t plane;   // stored floats of one phase
};

inline Layout PaddedLayout(const Geometry& g) {
  const Padded p = PaddedShape(g);
  if (g.sw == 2) return Layout{2, (p.w + 1) / 2, p.h * ((p.w + 1) / 2)};
  return Layout{1, p.w, p.h * p.w};
}

// Floats a padded plane takes in its layout (buffers are sized with this).
inline int64_t PaddedSize(const Geometry& g) {
  const Layout l = PaddedLayout(g);
  return l.phases * l.plane;
}

// The stored position of padded row r, column c.
inline int64_t PaddedIndex(const Layout& l, int64_t r, int64_t c) {
  return l.phases == 1 ? r * l.w + c : (c & 1) * l.plane + r * l.w + (c >> 1);
}

inline void PadPlane(const Geometry& g, const float* in, float* padded) {
  const Layout l = PaddedLayout(g);
  std::fill(padded, padded + l.phases * l.plane, 0.0f);
  for (int64_t y = 0; y < g.h; ++y) {
    const float* src = in + y * g.w;
    if (l.phases == 1) {
      std::copy(src, src + g.w, padded + (y + g.ph) * l.w + g.pw);
    } else {
      for (int64_t x = 0; x < g.w; ++x) padded[PaddedIndex(l, y + g.ph, x + g.pw)] = src[x];
    }
  }
}

// Column access of the conv loops: Unit (stride 1), Phased (stride 2, two column phases) or Strided (any stride).
enum class Columns { Unit, Phased, Strided };

// Where output column ox0 of padded row r reads under tap kx, and the step between consecutive output columns.
template <Columns Mode>
inline const float* TapRow(const Geometry& g, const Layout& l, const float* padded, int64_t r, int64_t ox0,
                           int64_t kx) {
  if constexpr (Mode == Columns::Unit) return padded + r * l.w + ox0 + kx;
  if constexpr (Mode == Columns::Phased) return padded + (kx & 1) * l.plane + r * l.w + ox0 + (kx >> 1);
  return padded + r * l.w + ox0 * g.sw + kx;
}

template <Columns Mode>
constexpr int64_t Step(const Geometry& g) {
  return Mode == Columns::Strided ? g.sw : 1;
}

// B output columns of row oy from ox0, every tap accumulated in registers, then stored once. The column mode is a
// template argument so the compiler vectorises the tap loop with plain shifted loads: 50-75 GFLOP/s on one Sapphire
// Rapids core for 3x3 / 5x5 planes of PPLCNetV3, against 16-21 for one row update per tap. `planes` planes of the
// same layout, `plane_stride` apart, are summed (the transposed conv of G branches in one pass).
template <int64_t B, Columns Mode>
inline void ConvBlock(const Geometry& g, const Layout& l, const float* padded, const float* taps, int64_t planes,
                      int64_t plane_stride, int64_t oy, int64_t ox0, float* out) {
  float acc[B] = {};
  const int64_t step = Step<Mode>(g);
  for (int64_t i = 0; i < planes; ++i) {
    const float* plane = padded + i * plane_stride;
    const float* plane_taps = taps + i * g.kh * g.kw;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const float* row = TapRow<Mode>(g, l, plane, oy * g.sh + ky, ox0, kx);
        const float wv = plane_taps[ky * g.kw + kx];
#pragma omp simd
        for (int64_t j = 0; j < B; ++j) acc[j] += wv * row[j * step];
      }
    }
  }
#pragma omp simd
  for (int64_t j = 0; j < B; ++j) out[j] = acc[j];
}

template <Columns Mode>
inline void ConvPaddedRows(const Geometry& g, const Layout& l, const float* padded, const float* taps,
                           int64_t planes, int64_t plane_stride, float* out) {
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    float* o = out + oy * g.ow;
    int64_t ox0 = 0;
    for (; ox0 + 32 <= g.ow; ox0 += 32) ConvBlock<32, Mode>(g, l, padded, taps, planes, plane_stride, oy, ox0, o + ox0);
    for (; ox0 + 8 <= g.ow; ox0 += 8) ConvBlock<8, Mode>(g, l, padded, taps, planes, plane_stride, oy, ox0, o + ox0);
    if (ox0 < g.ow && g.ow >= 8) {
      // The last columns as one block ending at the row's end: it overlaps columns already stored and stores the
      // same values there again (each column sums its taps in the same order). One column at a time cost a
      // quarter of the conv on rows of 38 (5x5, 240 x 12 x 38, forward + backward 14.2 ms vs 9.9 at 40).
      ConvBlock<8, Mode>(g, l, padded, taps, planes, plane_stride, oy, g.ow - 8, o + g.ow - 8);
    } else {
      for (; ox0 < g.ow; ++ox0) ConvBlock<1, Mode>(g, l, padded, taps, planes, plane_stride, oy, ox0, o + ox0);
    }
  }
}

// out = conv(plane, taps) from the padded plane (PadPlane).
inline void ConvPaddedPlane(const Geometry& g, const float* padded, const float* taps, float* out) {
  const Layout l = PaddedLayout(g);
  if (g.sw == 1) {
    ConvPaddedRows<Columns::Unit>(g, l, padded, taps, 1, 0, out);
  } else if (l.phases == 2) {
    ConvPaddedRows<Columns::Phased>(g, l, padded, taps, 1, 0, out);
  } else {
    ConvPaddedRows<Columns::Strided>(g, l, padded, taps, 1, 0, out);
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

// grad_in = sum_i conv_transpose(grad_out[i], taps[i]) over `planes` output-gradient planes already padded by
// PadPlane(TransposeGeometry(g), ...) (stride `padded_stride` apart); flipped_taps: each kernel rotated 180 degrees.
// Only the padded input gradient's interior -- the input's gradient, written straight to `grad_in` -- is computed:
// its padding rows and columns were computed and thrown away before, 2.45x the needed work on a 3x80 plane with a
// 5x5 kernel, 1.4x on 12x80 (rec batch 32, 4 branches, backward: 12x80 98 -> 78 ms, 3x80 63 -> 40 ms).
inline void TransposedConvToInput(const Geometry& g, const float* padded_grads, int64_t padded_stride,
                                  const float* flipped_taps, int64_t planes, float* grad_in) {
  Geometry t = TransposeGeometry(g);
  const Layout l = PaddedLayout(t);
  t.oh = g.h;
  t.ow = g.w;
  ConvPaddedRows<Columns::Unit>(t, l, padded_grads + g.ph * l.w + g.pw, flipped_taps, planes, padded_stride,
                                grad_in);
}

// grad_padded += conv_transpose(grad_out, taps) into a padded plane (PaddedLayout, PaddedSize floats).
inline void ScatterPaddedPlane(const Geometry& g, const float* grad_out, const float* taps, float* grad_padded) {
  const Layout l = PaddedLayout(g);
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float* go = grad_out + oy * g.ow;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t r = oy * g.sh + ky;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const float wv = taps[ky * g.kw + kx];
        if (g.sw == 1 || l.phases == 2) {
          float* dst = grad_padded + PaddedIndex(l, r, kx);  // output column ox lands at dst[ox] in both layouts
#pragma omp simd
          for (int64_t ox = 0; ox < g.ow; ++ox) dst[ox] += wv * go[ox];
        } else {
          float* row = grad_padded + r * l.w;
          for (int64_t ox = 0; ox < g.ow; ++ox) row[ox * g.sw + kx] += wv * go[ox];
        }
      }
    }
  }
}

// The interior of a padded gradient plane (PaddedLayout), written to the input's plane.
inline void UnpadPlane(const Geometry& g, const float* padded, float* out) {
  const Layout l = PaddedLayout(g);
  for (int64_t y = 0; y < g.h; ++y) {
    if (l.phases == 1) {
      const float* src = padded + (y + g.ph) * l.w + g.pw;
      std::copy(src, src + g.w, out + y * g.w);
    } else {
      for (int64_t x = 0; x < g.w; ++x) out[y * g.w + x] = padded[PaddedIndex(l, y + g.ph, x + g.pw)];
    }
  }
}

// acc[tap] += sum over the plane of grad_out * (the padded input under that tap). Unit-stride reads (stride 1, or
// stride 2's phases): 16 lanes accumulated across all rows and reduced once per tap (a reduction per row cost as
// much as its multiplies). 3x3 and 5x5 (PPLCNetV3's kernels) keep every tap's lanes at once: the plane is read
// once and each grad_out vector loaded once for all taps, instead of one pass over the plane per tap (rec batch
// 32, 4 branches, backward: 32x64x24x160 3x3 38.5 -> 32.8 ms, 32x240x12x80 5x5 77.7 -> 72.3 ms).
template <int64_t KH, int64_t KW, Columns Mode>
inline void CorrelateTaps(const Geometry& g, const float* padded, const float* grad_out, double* acc) {
  const Layout l = PaddedLayout(g);
  constexpr int64_t L = 16;
  const int64_t kh = KH > 0 ? KH : g.kh, kw = KW > 0 ? KW : g.kw;
  const int64_t body = Mode == Columns::Strided ? 0 : g.ow / L * L;
  const int64_t step = Step<Mode>(g);
  constexpr int64_t kFixed = KH > 0 ? KH * KW : 1;
  float lanes[kFixed][L] = {};
  float sums[kFixed] = {};
  if constexpr (KH > 0) {
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      const float* go = grad_out + oy * g.ow;
      for (int64_t ox = 0; ox < body; ox += L) {
        for (int64_t ky = 0; ky < KH; ++ky) {
          for (int64_t kx = 0; kx < KW; ++kx) {
            const float* row = TapRow<Mode>(g, l, padded, oy * g.sh + ky, ox, kx);
#pragma omp simd
            for (int64_t i = 0; i < L; ++i) lanes[ky * KW + kx][i] += go[ox + i] * row[i];
          }
        }
      }
      if (body < g.ow && body >= L) {
        // The row's last L columns as one more block, the gradients of the columns the body counted zeroed:
        // vector lanes instead of a scalar chain per tap (rows of 40: 8 of them).
        const int64_t ox = g.ow - L;
        float tail[L];
        for (int64_t i = 0; i < L; ++i) tail[i] = ox + i >= body ? go[ox + i] : 0.0f;
        for (int64_t ky = 0; ky < KH; ++ky) {
          for (int64_t kx = 0; kx < KW; ++kx) {
            const float* row = TapRow<Mode>(g, l, padded, oy * g.sh + ky, ox, kx);
#pragma omp simd
            for (int64_t i = 0; i < L; ++i) lanes[ky * KW + kx][i] += tail[i] * row[i];
          }
        }
      } else {
        for (int64_t q = 0; q < KH * KW; ++q) {
          const float* row = TapRow<Mode>(g, l, padded, oy * g.sh + q / KW, 0, q % KW);
          for (int64_t ox = body; ox < g.ow; ++ox) sums[q] += go[ox] * row[ox * step];
        }
      }
    }
    for (int64_t q = 0; q < KH * KW; ++q) {
      float sum = sums[q];
      for (int64_t i = 0; i < L; ++i) sum += lanes[q][i];
      acc[q] += sum;
    }
  } else {  // any kernel size: one pass over the plane per tap
    for (int64_t q = 0; q < kh * kw; ++q) {
      float tap_lanes[L] = {};
      float sum = 0.0f;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const float* row = TapRow<Mode>(g, l, padded, oy * g.sh + q / kw, 0, q % kw);
        const float* go = grad_out + oy * g.ow;
        for (int64_t ox = 0; ox < body; ox += L) {
#pragma omp simd
          for (int64_t i = 0; i < L; ++i) tap_lanes[i] += go[ox + i] * row[ox + i];
        }
        for (int64_t ox = body; ox < g.ow; ++ox) sum += go[ox] * row[ox * step];
      }
      for (int64_t i = 0; i < L; ++i) sum += tap_lanes[i];
      acc[q] += sum;
    }
  }
}

template <Columns Mode>
inline void CorrelateKernel(const Geometry& g, const float* padded, const float* grad_out, double* acc) {
  if (g.kh == 3 && g.kw == 3) return CorrelateTaps<3, 3, Mode>(g, padded, grad_out, acc);
  if (g.kh == 5 && g.kw == 5) return CorrelateTaps<5, 5, Mode>(g, padded, grad_out, acc);
  CorrelateTaps<0, 0, Mode>(g, padded, grad_out, acc);
}

inline void CorrelatePaddedPlane(const Geometry& g, const float* padded, const float* grad_out, double* acc) {
  if (g.sw == 1) return CorrelateKernel<Columns::Unit>(g, padded, grad_out, acc);
  if (PaddedLayout(g).phases == 2) return CorrelateKernel<Columns::Phased>(g, padded, grad_out, acc);
  CorrelateTaps<0, 0, Columns::Strided>(g, padded, grad_out, acc);
}

}  // namespace wb_depthwise
