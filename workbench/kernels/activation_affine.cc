// PPLCNetV3's learnable activation in one pass, forward and backward, on the CPU:
//   y = scale * act(x) + bias,   act = hard-swish (x * clip(x + 3, 0, 6) / 6) or ReLU,   scale, bias: [1]
// NCHW (any shape) float32.
//
// Why: Paddle runs it as three ops (hardswish, multiply, add) and autograd keeps both the activation's input and its
// output for the backward (the multiply needs act(x) for the scale's gradient). Here only x is kept and act(x) is
// recomputed in the backward's single pass: one activation-sized tensor less per activation (about a quarter of a
// PP-OCRv5_mobile_rec training step's saved activations), and one pass instead of three each way.
// The scale's and bias's gradients are sums over the whole tensor: per fixed block of 2^16 values in double, then the
// blocks in order, so the result does not depend on the thread count (exact resume stays exact).
#include <omp.h>

#include <algorithm>
#include <vector>

#include "paddle/extension.h"

namespace {

constexpr int64_t kBlock = 1 << 16;

inline float Act(float x, bool relu) {
  if (relu) return x > 0.0f ? x : 0.0f;
  return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f;
}

// d act / dx as Paddle's hardswish_grad / relu_grad compute it. Selects, not early returns: with branches the
// backward loop did not vectorise and took 3-4x the forward's time (bs-32 rec step: 342 ms of activation backward).
inline float ActGrad(float x, bool relu) {
  if (relu) return x > 0.0f ? 1.0f : 0.0f;
  const float ramp = (2.0f * x + 3.0f) / 6.0f;
  return x + 3.0f <= 0.0f ? 0.0f : (x + 3.0f >= 6.0f ? 1.0f : ramp);
}

// One block of the backward; RELU a template parameter so that each loop is branch-free.
template <bool RELU>
void BackwardBlock(const float* xp, const float* gp, float* gxp, float s, int64_t start, int64_t end, float* ga_out,
                   float* g_out) {
  float ga = 0.0f, g = 0.0f;  // one block of 2^16 values: float is enough, the blocks add up in double
#pragma omp simd reduction(+ : ga, g)
  for (int64_t i = start; i < end; ++i) {
    const float xi = xp[i], gi = gp[i];
    gxp[i] = gi * s * ActGrad(xi, RELU);
    ga += gi * Act(xi, RELU);
    g += gi;
  }
  *ga_out = ga;
  *g_out = g;
}

void CheckInputs(const paddle::Tensor& x, const paddle::Tensor& scale) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "activation affine: CPU float32 only");
  PD_CHECK(scale.numel() == 1, "activation affine: scale and bias must hold one value each");
}

}  // namespace

std::vector<paddle::Tensor> ActivationAffineForward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                                    const paddle::Tensor& bias, bool relu, int threads) {
  CheckInputs(x, scale);
  PD_CHECK(bias.numel() == 1, "activation affine: scale and bias must hold one value each");
  auto y = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const float s = scale.data<float>()[0], b = bias.data<float>()[0];
  const int64_t n = x.numel();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    if (relu) {
#pragma omp simd
      for (int64_t i = start; i < end; ++i) yp[i] = s * Act(xp[i], true) + b;
    } else {
#pragma omp simd
      for (int64_t i = start; i < end; ++i) yp[i] = s * Act(xp[i], false) + b;
    }
  }
  return {y};
}

std::vector<paddle::Tensor> ActivationAffineBackward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                                     const paddle::Tensor& grad_y, bool relu, int threads) {
  CheckInputs(x, scale);
  PD_CHECK(grad_y.numel() == x.numel(), "activation affine: the gradient must have the input's shape");
  auto grad_x = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_scale = paddle::empty({1}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_bias = paddle::empty({1}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* gp = grad_y.data<float>();
  float* gxp = grad_x.data<float>();
  const float s = scale.data<float>()[0];
  const int64_t n = x.numel();
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> sum_ga(blocks), sum_g(blocks);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t start = block * kBlock, end = std::min(n, start + kBlock);
    float ga, g;
    if (relu) {
      BackwardBlock<true>(xp, gp, gxp, s, start, end, &ga, &g);
    } else {
      BackwardBlock<false>(xp, gp, gxp, s, start, end, &ga, &g);
    }
    sum_ga[block] = ga;
    sum_g[block] = g;
  }
  double total_ga = 0.0, total_g = 0.0;
  for (int64_t block = 0; block < blocks; ++block) {
    total_ga += sum_ga[block];
    total_g += sum_g[block];
  }
  grad_scale.data<float>()[0] = static_cast<float>(total_ga);
  grad_bias.data<float>()[0] = static_cast<float>(total_g);
  return {grad_x, grad_scale, grad_bias};
}

PD_BUILD_OP(wb_activation_affine)
    .Inputs({"X", "Scale", "Bias"})
    .Outputs({"Y"})
    .Attrs({"relu: bool", "threads: int"})
    .SetKernelFn(PD_KERNEL(ActivationAffineForward));

// Only X and Scale are kept for the backward (not Y, not act(X)).
PD_BUILD_GRAD_OP(wb_activation_affine)
    .Inputs({"X", "Scale", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Scale"), paddle::Grad("Bias")})
    .Attrs({"relu: bool", "threads: int"})
    .SetKernelFn(PD_KERNEL(ActivationAffineBackward));

// ------------------------------------------------------------------------------------------------------------------
// The same with a per-channel bias added first:  y = scale * act(x + channel_bias[c]) + bias,  x NCHW [N, C, ...].
//
// Why: a PPLCNetV3 pointwise layer in training ends with a per-channel bias add (its folded BatchNorm shift) and
// then this activation. Paddle's broadcast add and its gradient (a reduction over N, H, W plus a copy of the
// gradient) cost 9-11 ms each way per layer at rec batch 32; here the bias rides along in the activation's passes
// and its gradient is the per-channel sum of the activation's input gradient, computed in the same pass. x + c is
// never stored: the backward recomputes it from x. Sums: per plane in float (planes are at most a few 10^5 values),
// planes in a fixed order in double: independent of the thread count.

namespace {

template <bool RELU>
void BiasedForwardPlane(const float* xp, float* yp, int64_t size, float c, float s, float b) {
#pragma omp simd
  for (int64_t i = 0; i < size; ++i) yp[i] = s * Act(xp[i] + c, RELU) + b;
}

template <bool RELU>
void BiasedBackwardPlane(const float* xp, const float* gp, float* gxp, int64_t size, float c, float s, float* ga_out,
                         float* g_out, float* gx_out) {
  float ga = 0.0f, g = 0.0f, gx = 0.0f;
#pragma omp simd reduction(+ : ga, g, gx)
  for (int64_t i = 0; i < size; ++i) {
    const float xi = xp[i] + c, gi = gp[i];
    const float gxi = gi * s * ActGrad(xi, RELU);
    gxp[i] = gxi;
    ga += gi * Act(xi, RELU);
    g += gi;
    gx += gxi;
  }
  *ga_out = ga;
  *g_out = g;
  *gx_out = gx;
}

void CheckChannelBias(const paddle::Tensor& x, const paddle::Tensor& channel_bias) {
  PD_CHECK(x.shape().size() >= 2, "channel-bias activation affine: x must be [N, C, ...]");
  PD_CHECK(channel_bias.is_cpu() && channel_bias.dtype() == paddle::DataType::FLOAT32 &&
               channel_bias.numel() == x.shape()[1],
           "channel-bias activation affine: channel_bias must be float32 [C]");
}

}  // namespace

std::vector<paddle::Tensor> ChannelBiasActivationAffineForward(const paddle::Tensor& x,
                                                               const paddle::Tensor& channel_bias,
                                                               const paddle::Tensor& scale, const paddle::Tensor& bias,
                                                               bool relu, int threads) {
  CheckInputs(x, scale);
  CheckChannelBias(x, channel_bias);
  PD_CHECK(bias.numel() == 1, "activation affine: scale and bias must hold one value each");
  auto y = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const int64_t channels = x.shape()[1], planes = x.shape()[0] * channels;
  const int64_t size = x.numel() / std::max<int64_t>(planes, 1);
  const float* xp = x.data<float>();
  const float* cp = channel_bias.data<float>();
  float* yp = y.data<float>();
  const float s = scale.data<float>()[0], b = bias.data<float>()[0];
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const float c = cp[p % channels];
    if (relu) {
      BiasedForwardPlane<true>(xp + p * size, yp + p * size, size, c, s, b);
    } else {
      BiasedForwardPlane<false>(xp + p * size, yp + p * size, size, c, s, b);
    }
  }
  return {y};
}

std::vector<paddle::Tensor> ChannelBiasActivationAffineBackward(const paddle::Tensor& x,
                                                                const paddle::Tensor& channel_bias,
                                                                const paddle::Tensor& scale,
                                                                const paddle::Tensor& grad_y, bool relu, int threads) {
  CheckInputs(x, scale);
  CheckChannelBias(x, channel_bias);
  PD_CHECK(grad_y.numel() == x.numel(), "activation affine: the gradient must have the input's shape");
  auto grad_x = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_channel_bias = paddle::empty({x.shape()[1]}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_scale = paddle::empty({1}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_bias = paddle::empty({1}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const int64_t channels = x.shape()[1], planes = x.shape()[0] * channels;
  const int64_t size = x.numel() / std::max<int64_t>(planes, 1);
  const float* xp = x.data<float>();
  const float* cp = channel_bias.data<float>();
  const float* gp = grad_y.data<float>();
  float* gxp = grad_x.data<float>();
  const float s = scale.data<float>()[0];
  std::vector<float> plane_ga(planes), plane_g(planes), plane_gx(planes);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t offset = p * size;
    const float c = cp[p % channels];
    if (relu) {
      BiasedBackwardPlane<true>(xp + offset, gp + offset, gxp + offset, size, c, s, &plane_ga[p], &plane_g[p],
                                &plane_gx[p]);
    } else {
      BiasedBackwardPlane<false>(xp + offset, gp + offset, gxp + offset, size, c, s, &plane_ga[p], &plane_g[p],
                                 &plane_gx[p]);
    }
  }
  double total_ga = 0.0, total_g = 0.0;
  std::vector<double> per_channel(channels, 0.0);
  for (int64_t p = 0; p < planes; ++p) {
    total_ga += plane_ga[p];
    total_g += plane_g[p];
    per_channel[p % channels] += plane_gx[p];
  }
  float* gcp = grad_channel_bias.data<float>();
  for (int64_t c = 0; c < channels; ++c) gcp[c] = static_cast<float>(per_channel[c]);
  grad_scale.data<float>()[0] = static_cast<float>(total_ga);
  grad_bias.data<float>()[0] = static_cast<float>(total_g);
  return {grad_x, grad_channel_bias, grad_scale, grad_bias};
}

PD_BUILD_OP(wb_channel_bias_activation_affine)
    .Inputs({"X", "ChannelBias", "Scale", "Bias"})
    .Outputs({"Y"})
    .Attrs({"relu: bool", "threads: int"})
    .SetKernelFn(PD_KERNEL(ChannelBiasActivationAffineForward));

// Only X, the channel bias and Scale are kept for the backward.
PD_BUILD_GRAD_OP(wb_channel_bias_activation_affine)
    .Inputs({"X", "ChannelBias", "Scale", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("ChannelBias"), paddle::Grad("Scale"), paddle::Grad("Bias")})
    .Attrs({"relu: bool", "threads: int"})
    .SetKernelFn(PD_KERNEL(ChannelBiasActivationAffineBackward));
