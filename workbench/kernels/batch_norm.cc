// Train-mode BatchNorm on the CPU, forward and backward, with an optional sum over groups of channels:
//   y[n, c] = sum_{g < G} (z[n, c*G + g] - mean[k]) * invstd[k] * weight[k] + bias[k],   k = c*G + g,
// NCHW float32. G = 1 is a plain BatchNorm; G = branches is the stacked depthwise branches of a re-parameterisable
// layer (one BN per branch, then their sum) in one pass instead of a BN and a strided sum.
//
// Why: Paddle 3.3's CPU batch_norm kernels run on one thread whatever the thread count (32x240x6x80: forward 5.5 ms
// at 1 thread, 6.0 at 2; forward + backward 21.7 / 22.3 ms), and BatchNorm is the largest share of a
// PP-OCRv5_mobile_rec training step with batch statistics (28 %). Statistics: `ChannelMeanVar` (channel_stats.h).
// Every reduction runs in a fixed order: results are deterministic. Mode `training = false`: the running statistics normalise (frozen
// BatchNorm), the backward has no statistics term.
#include <omp.h>

#include <cmath>
#include <vector>

#include "channel_stats.h"
#include "paddle/extension.h"

namespace {

struct Shape {
  int64_t n, k, c, g, hw;  // batch, input channels (C*G), output channels, group size, plane size
};

Shape MakeShape(const paddle::Tensor& z, int groups) {
  const auto s = z.shape();
  PD_CHECK(s.size() == 4, "batch norm: z must be [N, C*G, H, W]");
  PD_CHECK(groups >= 1 && s[1] % groups == 0, "batch norm: channels must be a multiple of groups");
  PD_CHECK(s[0] * s[2] * s[3] > 0, "batch norm: empty input");
  return Shape{s[0], s[1], s[1] / groups, groups, s[2] * s[3]};
}

}  // namespace

std::vector<paddle::Tensor> BatchNormForward(const paddle::Tensor& z, const paddle::Tensor& weight,
                                             const paddle::Tensor& bias, const paddle::Tensor& running_mean,
                                             const paddle::Tensor& running_var, float epsilon, bool training,
                                             int groups, int threads) {
  PD_CHECK(z.is_cpu() && z.dtype() == paddle::DataType::FLOAT32, "batch norm: CPU float32 only");
  const Shape s = MakeShape(z, groups);
  PD_CHECK(weight.numel() == s.k && bias.numel() == s.k && running_mean.numel() == s.k && running_var.numel() == s.k,
           "batch norm: weight, bias and running statistics need one value per channel of z");
  auto y = paddle::empty({s.n, s.c, z.shape()[2], z.shape()[3]}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto mean = paddle::empty({s.k}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto var = paddle::empty({s.k}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* zp = z.data<float>();
  const float* wp = weight.data<float>();
  const float* bp = bias.data<float>();
  float* mp = mean.data<float>();
  float* vp = var.data<float>();
  if (training) {
    ChannelMeanVar(zp, s.n, s.k, s.hw, mp, vp, threads);
  } else {
    const float* rm = running_mean.data<float>();
    const float* rv = running_var.data<float>();
    for (int64_t k = 0; k < s.k; ++k) {
      mp[k] = rm[k];
      vp[k] = rv[k];
    }
  }
  // y = sum_g z_k * a_k + shift_c, a_k = weight * invstd, shift_c = sum_g (bias_k - mean_k * a_k)
  std::vector<float> a(s.k);
  std::vector<float> shift(s.c, 0.0f);
  for (int64_t k = 0; k < s.k; ++k) {
    a[k] = wp[k] / std::sqrt(vp[k] + epsilon);
    shift[k / s.g] += bp[k] - mp[k] * a[k];
  }
  float* yp = y.data<float>();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    const int64_t b = plane / s.c, c = plane % s.c;
    float* out = yp + plane * s.hw;
    const float base = shift[c];
    const float* first = zp + (b * s.k + c * s.g) * s.hw;
    const float a0 = a[c * s.g];
#pragma omp simd
    for (int64_t i = 0; i < s.hw; ++i) out[i] = first[i] * a0 + base;
    for (int64_t g = 1; g < s.g; ++g) {
      const float* in = first + g * s.hw;
      const float ag = a[c * s.g + g];
#pragma omp simd
      for (int64_t i = 0; i < s.hw; ++i) out[i] += in[i] * ag;
    }
  }
  return {y, mean, var};
}

std::vector<paddle::Tensor> BatchNormBackward(const paddle::Tensor& z, const paddle::Tensor& weight,
                                              const paddle::Tensor& mean, const paddle::Tensor& var,
                                              const paddle::Tensor& grad_y, float epsilon, bool training, int groups,
                                              int threads) {
  const Shape s = MakeShape(z, groups);
  auto grad_z = paddle::empty(z.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_w = paddle::empty({s.k}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_b = paddle::empty({s.k}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* zp = z.data<float>();
  const float* wp = weight.data<float>();
  const float* mp = mean.data<float>();
  const float* vp = var.data<float>();
  const float* gp = grad_y.data<float>();
  float* gzp = grad_z.data<float>();
  float* gwp = grad_w.data<float>();
  float* gbp = grad_b.data<float>();
  std::vector<float> invstd(s.k);
  for (int64_t k = 0; k < s.k; ++k) invstd[k] = 1.0f / std::sqrt(vp[k] + epsilon);
  // Per input channel k: sum(dy) (the same for the G channels of a group) and sum(dy * (z - mean)).
  std::vector<double> sum_dy(s.k), sum_dy_centered(s.k);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t k = 0; k < s.k; ++k) {
    const int64_t c = k / s.g;
    const float m = mp[k];
    double total = 0.0, dot = 0.0;
    for (int64_t b = 0; b < s.n; ++b) {
      const float* dy = gp + (b * s.c + c) * s.hw;
      const float* in = zp + (b * s.k + k) * s.hw;
      float pt = 0.0f, pd = 0.0f;
#pragma omp simd reduction(+ : pt, pd)
      for (int64_t i = 0; i < s.hw; ++i) {
        pt += dy[i];
        pd += dy[i] * (in[i] - m);
      }
      total += pt;
      dot += pd;
    }
    sum_dy[k] = total;
    sum_dy_centered[k] = dot;
    gbp[k] = static_cast<float>(total);
    gwp[k] = static_cast<float>(dot * invstd[k]);
  }
  // dz = w * invstd * (dy - mean(dy) - (z - mean) * invstd^2 * mean(dy * (z - mean)))   (training)
  //    = w * invstd * dy                                                                (running statistics)
  const double count = static_cast<double>(s.n * s.hw);
  std::vector<float> gain(s.k), offset(s.k), slope(s.k);
  for (int64_t k = 0; k < s.k; ++k) {
    gain[k] = wp[k] * invstd[k];
    if (training) {
      offset[k] = static_cast<float>(sum_dy[k] / count);
      slope[k] = static_cast<float>(sum_dy_centered[k] / count) * invstd[k] * invstd[k];
    } else {
      offset[k] = 0.0f;
      slope[k] = 0.0f;
    }
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t plane = 0; plane < s.n * s.k; ++plane) {
    const int64_t b = plane / s.k, k = plane % s.k;
    const float* dy = gp + (b * s.c + k / s.g) * s.hw;
    const float* in = zp + plane * s.hw;
    float* out = gzp + plane * s.hw;
    const float gk = gain[k], ok = offset[k], sk = slope[k], mk = mp[k];
#pragma omp simd
    for (int64_t i = 0; i < s.hw; ++i) out[i] = gk * (dy[i] - ok - (in[i] - mk) * sk);
  }
  return {grad_z, grad_w, grad_b};
}

PD_BUILD_OP(wb_batch_norm_sum)
    .Inputs({"Z", "Weight", "Bias", "RunningMean", "RunningVar"})
    .Outputs({"Y", "Mean", "Var"})
    .Attrs({"epsilon: float", "training: bool", "groups: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(BatchNormForward));

PD_BUILD_GRAD_OP(wb_batch_norm_sum)
    .Inputs({"Z", "Weight", "Mean", "Var", paddle::Grad("Y")})
    .Outputs({paddle::Grad("Z"), paddle::Grad("Weight"), paddle::Grad("Bias")})
    .Attrs({"epsilon: float", "training: bool", "groups: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(BatchNormBackward));
