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

// d act / dx as Paddle's hardswish_grad / relu_grad compute it.
inline float ActGrad(float x, bool relu) {
  if (relu) return x > 0.0f ? 1.0f : 0.0f;
  if (x + 3.0f <= 0.0f) return 0.0f;
  if (x + 3.0f >= 6.0f) return 1.0f;
  return (2.0f * x + 3.0f) / 6.0f;
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
    float ga = 0.0f, g = 0.0f;  // one block of 2^16 values: float is enough, the blocks add up in double
#pragma omp simd reduction(+ : ga, g)
    for (int64_t i = start; i < end; ++i) {
      const float xi = xp[i], gi = gp[i];
      gxp[i] = gi * s * ActGrad(xi, relu);
      ga += gi * Act(xi, relu);
      g += gi;
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
