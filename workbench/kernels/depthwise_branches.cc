// The stacked depthwise branches of a re-parameterisable layer in training, each with its own train-mode
// BatchNorm, summed -- without ever holding the branches' outputs:
//   y[n, c] = sum_{g < G} BN_k(z_k[n]),   z_k = depthwise_conv(x[:, c], kernel[k]),   k = c*G + g.
// NCHW float32, any stride and zero padding, dilation 1.
//
// Why: the G branch outputs are G times the layer's output. Computed into a tensor (then normalised, summed, and
// recomputed for the backward) they made these layers memory-bound: 32x32x24x160, 3x3, G = 4 took 44 ms forward
// and 99 ms backward at 2 threads (6-9 GFLOP/s), a third of a PP-OCRv5_mobile_rec training step with batch
// statistics. Here each channel's planes stay in L1/L2:
//   forward   pass 1 computes every branch plane by plane and keeps only its sum and sum of squares (the batch
//             statistics); pass 2 is ONE depthwise conv with the BN-weighted kernel sum, since with the
//             statistics fixed  sum_g BN_k(z_k) = conv(x, sum_g a_k kernel_k) + sum_g (bias_k - mean_k a_k),
//             a_k = weight_k / sqrt(var_k + eps);
//   backward  pass 1 recomputes one channel's branch planes (kept for that channel only) for sum(dy) and
//             sum(dy * (z - mean)); pass 2 turns each into its BN input gradient, transposed-convolves it into the
//             input gradient and correlates it with the input for the kernel gradient.
// One channel per loop iteration (its planes, its kernels): no shared writes, every reduction in a fixed order
// (float per plane, double across the batch), so results are deterministic whatever the thread count.
// `training = false` (running statistics) is supported for completeness; wb fuses frozen branches into one conv.
#include <omp.h>

#include <cmath>
#include <vector>

#include "channel_stats.h"
#include "depthwise_rows.h"
#include "paddle/extension.h"

using namespace wb_depthwise;

namespace {

struct Branches {
  Geometry g;
  int64_t groups, taps, in_plane, out_plane, padded_plane;
};

Branches MakeBranches(const paddle::Tensor& x, const paddle::Tensor& kernel, int sh, int sw, int ph, int pw,
                      int groups) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "depthwise branches: CPU float32 only");
  const Geometry g = MakeGeometry(x, kernel, sh, sw, ph, pw);
  PD_CHECK(groups >= 1 && g.m == groups, "depthwise branches: kernel rows must be channels x groups");
  return Branches{g, groups, g.kh * g.kw, g.h * g.w, g.oh * g.ow, PaddedSize(g)};
}

}  // namespace

std::vector<paddle::Tensor> DepthwiseBranchesForward(const paddle::Tensor& x, const paddle::Tensor& kernel,
                                                     const paddle::Tensor& weight, const paddle::Tensor& bias,
                                                     const paddle::Tensor& running_mean,
                                                     const paddle::Tensor& running_var, int sh, int sw, int ph,
                                                     int pw, float epsilon, bool training, int groups, int threads) {
  const Branches s = MakeBranches(x, kernel, sh, sw, ph, pw, groups);
  const Geometry& g = s.g;
  const int64_t k_total = g.c * s.groups;
  PD_CHECK(weight.numel() == k_total && bias.numel() == k_total && running_mean.numel() == k_total &&
               running_var.numel() == k_total,
           "depthwise branches: weight, bias and running statistics need one value per branch channel");
  auto mean = paddle::empty({k_total}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto var = paddle::empty({k_total}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* kp = kernel.data<float>();
  float* mp = mean.data<float>();
  float* vp = var.data<float>();
  if (training) {
    const double count = static_cast<double>(g.n * s.out_plane);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < g.c; ++c) {
      std::vector<float> z(s.out_plane), padded(s.padded_plane);
      std::vector<ShiftedMoments> moments(s.groups);
      for (int64_t b = 0; b < g.n; ++b) {
        PadPlane(g, xp + (b * g.c + c) * s.in_plane, padded.data());
        for (int64_t i = 0; i < s.groups; ++i) {
          ConvPaddedPlane(g, padded.data(), kp + (c * s.groups + i) * s.taps, z.data());
          moments[i].Add(z.data(), s.out_plane);
        }
      }
      for (int64_t i = 0; i < s.groups; ++i) moments[i].Finish(count, mp + c * s.groups + i, vp + c * s.groups + i);
    }
  } else {
    const float* rm = running_mean.data<float>();
    const float* rv = running_var.data<float>();
    std::copy(rm, rm + k_total, mp);
    std::copy(rv, rv + k_total, vp);
  }
  // The BN-weighted kernel sum and the constant of each channel (accumulated in double, rounded once).
  const float* wp = weight.data<float>();
  const float* bp = bias.data<float>();
  std::vector<float> fused(g.c * s.taps), constant(g.c);
  for (int64_t c = 0; c < g.c; ++c) {
    std::vector<double> taps(s.taps, 0.0);
    double total = 0.0;
    for (int64_t i = 0; i < s.groups; ++i) {
      const int64_t k = c * s.groups + i;
      const double a = static_cast<double>(wp[k]) / std::sqrt(static_cast<double>(vp[k]) + epsilon);
      for (int64_t t = 0; t < s.taps; ++t) taps[t] += a * kp[k * s.taps + t];
      total += bp[k] - mp[k] * a;
    }
    for (int64_t t = 0; t < s.taps; ++t) fused[c * s.taps + t] = static_cast<float>(taps[t]);
    constant[c] = static_cast<float>(total);
  }
  auto y = paddle::empty({g.n, g.c, g.oh, g.ow}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  float* yp = y.data<float>();
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> padded(s.padded_plane);  // one per thread, not one per plane
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
      const int64_t c = plane % g.c;
      float* out = yp + plane * s.out_plane;
      PadPlane(g, xp + plane * s.in_plane, padded.data());
      ConvPaddedPlane(g, padded.data(), fused.data() + c * s.taps, out);
      const float add = constant[c];
#pragma omp simd
      for (int64_t p = 0; p < s.out_plane; ++p) out[p] += add;
    }
  }
  return {y, mean, var};
}

std::vector<paddle::Tensor> DepthwiseBranchesBackward(const paddle::Tensor& x, const paddle::Tensor& kernel,
                                                      const paddle::Tensor& weight, const paddle::Tensor& mean,
                                                      const paddle::Tensor& var, const paddle::Tensor& grad_y,
                                                      int sh, int sw, int ph, int pw, float epsilon, bool training,
                                                      int groups, int threads) {
  const Branches s = MakeBranches(x, kernel, sh, sw, ph, pw, groups);
  const Geometry& g = s.g;
  const int64_t k_total = g.c * s.groups;
  PD_CHECK(grad_y.numel() == g.n * g.c * s.out_plane, "depthwise branches: grad_y must be [N, C, OH, OW]");
  auto grad_x = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_kernel = paddle::empty(kernel.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_w = paddle::empty({k_total}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_b = paddle::empty({k_total}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* kp = kernel.data<float>();
  const float* wp = weight.data<float>();
  const float* mp = mean.data<float>();
  const float* vp = var.data<float>();
  const float* gp = grad_y.data<float>();
  float* gxp = grad_x.data<float>();
  float* gkp = grad_kernel.data<float>();
  float* gwp = grad_w.data<float>();
  float* gbp = grad_b.data<float>();
  const double count = static_cast<double>(g.n * s.out_plane);
  const bool unit_stride = g.sh == 1 && g.sw == 1;
  const Geometry t = TransposeGeometry(g);
  const int64_t grad_stride = PaddedSize(t);
#pragma omp parallel num_threads(threads)
  {
    // One channel's branch outputs for the whole batch, computed once in pass 1 and reused in pass 2 (at most a
    // few MB: 4 branches x 32 x 24x160 floats is 2 MB -- the whole layer's would be C times that).
    std::vector<float> z(s.groups * g.n * s.out_plane), padded(s.padded_plane),
        grad_padded(unit_stride ? 0 : s.padded_plane);  // stride 1 writes the input gradient directly
    // stride 1: the branches' BN input gradients, each padded for the transposed conv, and the flipped kernels
    std::vector<float> grads(unit_stride ? s.groups * grad_stride : 0), flipped(unit_stride ? s.groups * s.taps : 0);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < g.c; ++c) {
      for (int64_t f = 0; f < static_cast<int64_t>(flipped.size()); ++f) {
        const int64_t i = f / s.taps, tap = f % s.taps;
        flipped[f] = kp[(c * s.groups + i) * s.taps + (s.taps - 1 - tap)];
      }
      std::vector<double> dot(s.groups, 0.0), taps(s.groups * s.taps, 0.0);
      double sum_dy = 0.0;
      // Pass 1: the branch outputs, sum(dy) and, per branch, sum(dy * (z - mean)).
      for (int64_t b = 0; b < g.n; ++b) {
        PadPlane(g, xp + (b * g.c + c) * s.in_plane, padded.data());
        const float* dy = gp + (b * g.c + c) * s.out_plane;
        float pt = 0.0f;
#pragma omp simd reduction(+ : pt)
        for (int64_t p = 0; p < s.out_plane; ++p) pt += dy[p];
        sum_dy += pt;
        for (int64_t i = 0; i < s.groups; ++i) {
          float* zi = z.data() + (b * s.groups + i) * s.out_plane;
          ConvPaddedPlane(g, padded.data(), kp + (c * s.groups + i) * s.taps, zi);
          const float m = mp[c * s.groups + i];
          float pd = 0.0f;
#pragma omp simd reduction(+ : pd)
          for (int64_t p = 0; p < s.out_plane; ++p) pd += dy[p] * (zi[p] - m);
          dot[i] += pd;
        }
      }
      // dz = w * invstd * (dy - mean(dy) - (z - mean) * invstd^2 * mean(dy * (z - mean)))   (training)
      //    = w * invstd * dy                                                                (running statistics)
      std::vector<float> gain(s.groups), offset(s.groups), slope(s.groups);
      for (int64_t i = 0; i < s.groups; ++i) {
        const int64_t k = c * s.groups + i;
        const float invstd = 1.0f / std::sqrt(vp[k] + epsilon);
        gbp[k] = static_cast<float>(sum_dy);
        gwp[k] = static_cast<float>(dot[i] * invstd);
        gain[i] = wp[k] * invstd;
        offset[i] = training ? static_cast<float>(sum_dy / count) : 0.0f;
        slope[i] = training ? static_cast<float>(dot[i] / count) * invstd * invstd : 0.0f;
      }
      // Pass 2: each branch's BN input gradient, transposed-convolved into the input gradient and correlated with
      // the input for the kernel gradient.
      for (int64_t b = 0; b < g.n; ++b) {
        PadPlane(g, xp + (b * g.c + c) * s.in_plane, padded.data());
        const float* dy = gp + (b * g.c + c) * s.out_plane;
        if (!unit_stride) std::fill(grad_padded.begin(), grad_padded.end(), 0.0f);
        for (int64_t i = 0; i < s.groups; ++i) {
          const float* branch = kp + (c * s.groups + i) * s.taps;
          float* zi = z.data() + (b * s.groups + i) * s.out_plane;
          const float gk = gain[i], ok = offset[i], sk = slope[i], mk = mp[c * s.groups + i];
#pragma omp simd
          for (int64_t p = 0; p < s.out_plane; ++p) zi[p] = gk * (dy[p] - ok - (zi[p] - mk) * sk);
          if (unit_stride) {
            PadPlane(t, zi, grads.data() + i * grad_stride);
          } else {
            ScatterPaddedPlane(g, zi, branch, grad_padded.data());
          }
          CorrelatePaddedPlane(g, padded.data(), zi, taps.data() + i * s.taps);
        }
        float* grad_in = gxp + (b * g.c + c) * s.in_plane;
        if (unit_stride) {
          TransposedConvToInput(g, grads.data(), grad_stride, flipped.data(), s.groups, grad_in);
        } else {
          UnpadPlane(g, grad_padded.data(), grad_in);
        }
      }
      for (int64_t q = 0; q < s.groups * s.taps; ++q) gkp[c * s.groups * s.taps + q] = static_cast<float>(taps[q]);
    }
  }
  return {grad_x, grad_kernel, grad_w, grad_b};
}

PD_BUILD_OP(wb_depthwise_branches)
    .Inputs({"X", "Kernel", "Weight", "Bias", "RunningMean", "RunningVar"})
    .Outputs({"Y", "Mean", "Var"})
    .Attrs({"stride_h: int", "stride_w: int", "pad_h: int", "pad_w: int", "epsilon: float", "training: bool",
            "groups: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(DepthwiseBranchesForward));

// The backward as an op of its own: models.ops writes the backward (a PyLayer) that calls it.
PD_BUILD_OP(wb_depthwise_branches_bwd)
    .Inputs({"X", "Kernel", "Weight", "Mean", "Var", "GradY"})
    .Outputs({"GradX", "GradKernel", "GradWeight", "GradBias"})
    .Attrs({"stride_h: int", "stride_w: int", "pad_h: int", "pad_w: int", "epsilon: float", "training: bool",
            "groups: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(DepthwiseBranchesBackward));
