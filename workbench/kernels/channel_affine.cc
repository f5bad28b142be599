// Per-channel statistics and a per-channel affine of an NCHW float32 tensor, forward and backward, on the CPU:
//   wb_channel_moments(x) -> (mean[c], biased var[c])          (and _bwd: dx = dmean / P + 2 dvar (x - mean) / P)
//   wb_channel_affine(x, a, d) -> y = a[c] * x + d[c]           (grad: dx = a dy, da = sum(dy x), dd = sum(dy))
// P = N * H * W. Why: a PPLCNetV3 depthwise layer's identity BatchNorm and 1x1 depthwise branch (stride 1) are one
// per-channel affine of the layer's input whose coefficients come from the input's batch statistics
// (`LearnableRepLayer._identity_and_1x1_batch_stats`); these ops compute it keeping only the input for the backward,
// where two BatchNorms keep the 1x1 conv's output too, and each in one pass over the tensor instead of Paddle's
// three to four per op. Statistics: `ChannelMeanVar` (channel_stats.h, as the BatchNorm kernel's); every reduction
// runs in a fixed order, so results are deterministic.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "channel_stats.h"
#include "paddle/extension.h"

namespace {

struct Planes {
  int64_t n, c, hw;
};

Planes MakePlanes(const paddle::Tensor& x) {
  const auto s = x.shape();
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "channel ops: CPU float32 only");
  PD_CHECK(s.size() == 4, "channel ops: x must be [N, C, H, W]");
  PD_CHECK(s[0] * s[2] * s[3] > 0, "channel ops: empty input");
  return Planes{s[0], s[1], s[2] * s[3]};
}

}  // namespace

std::vector<paddle::Tensor> ChannelMoments(const paddle::Tensor& x, int threads) {
  const Planes p = MakePlanes(x);
  auto mean = paddle::empty({p.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto var = paddle::empty({p.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  float* mp = mean.data<float>();
  float* vp = var.data<float>();
  ChannelMeanVar(xp, p.n, p.c, p.hw, mp, vp, threads);
  return {mean, var};
}

std::vector<paddle::Tensor> ChannelMomentsBackward(const paddle::Tensor& x, const paddle::Tensor& mean,
                                                   const paddle::Tensor& grad_mean, const paddle::Tensor& grad_var,
                                                   int threads) {
  const Planes p = MakePlanes(x);
  PD_CHECK(mean.numel() == p.c && grad_mean.numel() == p.c && grad_var.numel() == p.c,
           "channel moments: one value per channel");
  auto grad_x = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* mp = mean.data<float>();
  const float* gm = grad_mean.data<float>();
  const float* gv = grad_var.data<float>();
  float* gxp = grad_x.data<float>();
  const float inv_count = 1.0f / static_cast<float>(p.n * p.hw);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t plane = 0; plane < p.n * p.c; ++plane) {
    const int64_t c = plane % p.c;
    const float base = gm[c] * inv_count, slope = 2.0f * gv[c] * inv_count, m = mp[c];
    const float* in = xp + plane * p.hw;
    float* out = gxp + plane * p.hw;
#pragma omp simd
    for (int64_t i = 0; i < p.hw; ++i) out[i] = base + slope * (in[i] - m);
  }
  return {grad_x};
}

std::vector<paddle::Tensor> ChannelAffine(const paddle::Tensor& x, const paddle::Tensor& a, const paddle::Tensor& d,
                                          int threads) {
  const Planes p = MakePlanes(x);
  PD_CHECK(a.numel() == p.c && d.numel() == p.c, "channel affine: a and d need one value per channel");
  auto y = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* ap = a.data<float>();
  const float* dp = d.data<float>();
  float* yp = y.data<float>();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t plane = 0; plane < p.n * p.c; ++plane) {
    const int64_t c = plane % p.c;
    const float ac = ap[c], dc = dp[c];
    const float* in = xp + plane * p.hw;
    float* out = yp + plane * p.hw;
#pragma omp simd
    for (int64_t i = 0; i < p.hw; ++i) out[i] = ac * in[i] + dc;
  }
  return {y};
}

std::vector<paddle::Tensor> ChannelAffineBackward(const paddle::Tensor& x, const paddle::Tensor& a,
                                                  const paddle::Tensor& grad_y, int threads) {
  const Planes p = MakePlanes(x);
  auto grad_x = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_a = paddle::empty({p.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_d = paddle::empty({p.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* ap = a.data<float>();
  const float* gp = grad_y.data<float>();
  float* gxp = grad_x.data<float>();
  float* gap = grad_a.data<float>();
  float* gdp = grad_d.data<float>();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < p.c; ++c) {
    const float ac = ap[c];
    double dot = 0.0, total = 0.0;
    for (int64_t b = 0; b < p.n; ++b) {
      const int64_t offset = (b * p.c + c) * p.hw;
      const float* in = xp + offset;
      const float* dy = gp + offset;
      float* out = gxp + offset;
      float pd = 0.0f, pt = 0.0f;
#pragma omp simd reduction(+ : pd, pt)
      for (int64_t i = 0; i < p.hw; ++i) {
        out[i] = ac * dy[i];
        pd += dy[i] * in[i];
        pt += dy[i];
      }
      dot += pd;
      total += pt;
    }
    gap[c] = static_cast<float>(dot);
    gdp[c] = static_cast<float>(total);
  }
  return {grad_x, grad_a, grad_d};
}

// Plain ops: models.ops.channel_moments writes the backward in Python (either statistic's gradient may be absent).
PD_BUILD_OP(wb_channel_moments)
    .Inputs({"X"})
    .Outputs({"Mean", "Var"})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(ChannelMoments));

PD_BUILD_OP(wb_channel_moments_bwd)
    .Inputs({"X", "Mean", "GradMean", "GradVar"})
    .Outputs({"GradX"})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(ChannelMomentsBackward));

// Only X and A are kept for the backward.
PD_BUILD_OP(wb_channel_affine)
    .Inputs({"X", "A", "D"})
    .Outputs({"Y"})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(ChannelAffine));

PD_BUILD_GRAD_OP(wb_channel_affine)
    .Inputs({"X", "A", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("A"), paddle::Grad("D")})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(ChannelAffineBackward));
