// Depthwise 2-D convolution on the CPU, forward and backward: NCHW float32, input channel c feeding output
// channels c*M .. c*M+M-1 (channel multiplier M, weight [C*M, 1, KH, KW]), any stride and zero padding, dilation 1.
//
// Why: Paddle 3.3's CPU kernel for grouped convolutions with one channel per group runs at 2-6 GFLOP/s, so the
// depthwise layers of PPLCNet take about a third of a rec training step (half of a det step) for 6-7 % of its
// FLOPs. These loops run over one feature-map plane at a time (it stays in L1/L2), vectorise along the row, and
// give the same numbers up to float rounding. Every reduction runs in a fixed order: results are deterministic.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "paddle/extension.h"

namespace {

struct Geometry {
  int64_t n, c, m, h, w, kh, kw, oh, ow;
  int64_t sh, sw, ph, pw;
};

Geometry MakeGeometry(const paddle::Tensor& x, const paddle::Tensor& weight, int sh, int sw, int ph, int pw) {
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

// Output columns ox in [lo, hi) read input column ox * sw - pw + kx, which lies inside [0, w).
inline void ColumnRange(const Geometry& g, int64_t kx, int64_t* lo, int64_t* hi) {
  const int64_t first = g.pw - kx;
  *lo = first <= 0 ? 0 : (first + g.sw - 1) / g.sw;
  const int64_t last = g.w - 1 + g.pw - kx;
  *hi = last < 0 ? 0 : std::min<int64_t>(g.ow, last / g.sw + 1);
  if (*hi < *lo) *hi = *lo;
}

// out_row += wv * in_row[ox * sw - pw + kx] over the valid columns.
inline void AxpyRow(const Geometry& g, int64_t kx, float wv, const float* in_row, float* out_row) {
  int64_t lo, hi;
  ColumnRange(g, kx, &lo, &hi);
  if (g.sw == 1) {
    const float* src = in_row - g.pw + kx;
#pragma omp simd
    for (int64_t ox = lo; ox < hi; ++ox) out_row[ox] += wv * src[ox];
  } else {
    for (int64_t ox = lo; ox < hi; ++ox) out_row[ox] += wv * in_row[ox * g.sw - g.pw + kx];
  }
}

// in_row[ox * sw - pw + kx] += wv * out_row[ox] over the valid columns (the transpose of AxpyRow).
inline void ScatterRow(const Geometry& g, int64_t kx, float wv, const float* out_row, float* in_row) {
  int64_t lo, hi;
  ColumnRange(g, kx, &lo, &hi);
  if (g.sw == 1) {
    float* dst = in_row - g.pw + kx;
#pragma omp simd
    for (int64_t ox = lo; ox < hi; ++ox) dst[ox] += wv * out_row[ox];
  } else {
    for (int64_t ox = lo; ox < hi; ++ox) in_row[ox * g.sw - g.pw + kx] += wv * out_row[ox];
  }
}

}  // namespace

std::vector<paddle::Tensor> DepthwiseForward(const paddle::Tensor& x, const paddle::Tensor& weight, int sh, int sw,
                                             int ph, int pw, int threads) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "depthwise conv: CPU float32 only");
  const Geometry g = MakeGeometry(x, weight, sh, sw, ph, pw);
  const int64_t channels_out = g.c * g.m;
  auto out = paddle::full({g.n, channels_out, g.oh, g.ow}, 0.0f, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* wp = weight.data<float>();
  float* op = out.data<float>();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t plane = 0; plane < g.n * channels_out; ++plane) {
    const int64_t b = plane / channels_out, o = plane % channels_out;
    const float* in = xp + (b * g.c + o / g.m) * g.h * g.w;
    const float* wo = wp + o * g.kh * g.kw;
    float* res = op + plane * g.oh * g.ow;
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.sh - g.ph + ky;
        if (iy < 0 || iy >= g.h) continue;
        for (int64_t kx = 0; kx < g.kw; ++kx) AxpyRow(g, kx, wo[ky * g.kw + kx], in + iy * g.w, res + oy * g.ow);
      }
    }
  }
  return {out};
}

std::vector<paddle::Tensor> DepthwiseBackward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                              const paddle::Tensor& grad_out, int sh, int sw, int ph, int pw,
                                              int threads) {
  const Geometry g = MakeGeometry(x, weight, sh, sw, ph, pw);
  const int64_t channels_out = g.c * g.m;
  auto grad_x = paddle::full({g.n, g.c, g.h, g.w}, 0.0f, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_w = paddle::full({channels_out, 1, g.kh, g.kw}, 0.0f, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* wp = weight.data<float>();
  const float* gp = grad_out.data<float>();
  float* gxp = grad_x.data<float>();
  float* gwp = grad_w.data<float>();
  // Input gradient: one input plane per iteration, its M output planes scattered into it (no shared writes).
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
    const int64_t b = plane / g.c, c = plane % g.c;
    float* gx = gxp + plane * g.h * g.w;
    for (int64_t m = 0; m < g.m; ++m) {
      const int64_t o = c * g.m + m;
      const float* go = gp + (b * channels_out + o) * g.oh * g.ow;
      const float* wo = wp + o * g.kh * g.kw;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t iy = oy * g.sh - g.ph + ky;
          if (iy < 0 || iy >= g.h) continue;
          for (int64_t kx = 0; kx < g.kw; ++kx) ScatterRow(g, kx, wo[ky * g.kw + kx], go + oy * g.ow, gx + iy * g.w);
        }
      }
    }
  }
  // Weight gradient: one output channel per iteration, the batch summed in order (float per image, double total).
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t o = 0; o < channels_out; ++o) {
    const int64_t c = o / g.m;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        int64_t lo, hi;
        ColumnRange(g, kx, &lo, &hi);
        double total = 0.0;
        for (int64_t b = 0; b < g.n; ++b) {
          const float* in = xp + (b * g.c + c) * g.h * g.w;
          const float* go = gp + (b * channels_out + o) * g.oh * g.ow;
          float acc = 0.0f;
          for (int64_t oy = 0; oy < g.oh; ++oy) {
            const int64_t iy = oy * g.sh - g.ph + ky;
            if (iy < 0 || iy >= g.h) continue;
            const float* in_row = in + iy * g.w;
            const float* out_row = go + oy * g.ow;
            if (g.sw == 1) {
              const float* src = in_row - g.pw + kx;
#pragma omp simd reduction(+ : acc)
              for (int64_t ox = lo; ox < hi; ++ox) acc += out_row[ox] * src[ox];
            } else {
              for (int64_t ox = lo; ox < hi; ++ox) acc += out_row[ox] * in_row[ox * g.sw - g.pw + kx];
            }
          }
          total += acc;
        }
        gwp[o * g.kh * g.kw + ky * g.kw + kx] = static_cast<float>(total);
      }
    }
  }
  return {grad_x, grad_w};
}

PD_BUILD_OP(wb_depthwise_conv2d)
    .Inputs({"X", "Weight"})
    .Outputs({"Out"})
    .Attrs({"stride_h: int", "stride_w: int", "pad_h: int", "pad_w: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(DepthwiseForward));

PD_BUILD_GRAD_OP(wb_depthwise_conv2d)
    .Inputs({"X", "Weight", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Weight")})
    .Attrs({"stride_h: int", "stride_w: int", "pad_h: int", "pad_w: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(DepthwiseBackward));

// The backward as an op of its own, for callers that write their own backward (recomputing the forward).
PD_BUILD_OP(wb_depthwise_conv2d_bwd)
    .Inputs({"X", "Weight", "GradOut"})
    .Outputs({"GradX", "GradWeight"})
    .Attrs({"stride_h: int", "stride_w: int", "pad_h: int", "pad_w: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(DepthwiseBackward));
