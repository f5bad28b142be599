// Depthwise 2-D convolution on the CPU, forward and backward: NCHW float32, input channel c feeding output
// channels c*M .. c*M+M-1 (channel multiplier M, weight [C*M, 1, KH, KW]), any stride and zero padding, dilation 1.
//
// Why: Paddle 3.3's CPU kernel for grouped convolutions with one channel per group runs at 2-6 GFLOP/s, so the
// depthwise layers of PPLCNet take about a third of a rec training step (half of a det step) for 6-7 % of its
// FLOPs. These loops (depthwise_rows.h) run over one zero-padded feature-map plane at a time (it stays in L1/L2),
// vectorise along the row, and give the same numbers up to float rounding. Every reduction runs in a fixed order:
// results are deterministic.
#include <omp.h>

#include <vector>

#include "depthwise_rows.h"
#include "paddle/extension.h"

using namespace wb_depthwise;

std::vector<paddle::Tensor> DepthwiseForward(const paddle::Tensor& x, const paddle::Tensor& weight, int sh, int sw,
                                             int ph, int pw, int threads) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "depthwise conv: CPU float32 only");
  const Geometry g = MakeGeometry(x, weight, sh, sw, ph, pw);
  const int64_t channels_out = g.c * g.m, taps = g.kh * g.kw, out_plane = g.oh * g.ow;
  auto out = paddle::empty({g.n, channels_out, g.oh, g.ow}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* wp = weight.data<float>();
  float* op = out.data<float>();
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> padded(PaddedSize(g));
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {  // one input plane, its M output planes
      const int64_t b = plane / g.c, c = plane % g.c;
      PadPlane(g, xp + plane * g.h * g.w, padded.data());
      for (int64_t m = 0; m < g.m; ++m) {
        const int64_t o = c * g.m + m;
        ConvPaddedPlane(g, padded.data(), wp + o * taps, op + (b * channels_out + o) * out_plane);
      }
    }
  }
  return {out};
}

std::vector<paddle::Tensor> DepthwiseBackward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                              const paddle::Tensor& grad_out, int sh, int sw, int ph, int pw,
                                              int threads) {
  const Geometry g = MakeGeometry(x, weight, sh, sw, ph, pw);
  const int64_t channels_out = g.c * g.m, taps = g.kh * g.kw, out_plane = g.oh * g.ow;
  auto grad_x = paddle::empty({g.n, g.c, g.h, g.w}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_w = paddle::empty({channels_out, 1, g.kh, g.kw}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* wp = weight.data<float>();
  const float* gp = grad_out.data<float>();
  float* gxp = grad_x.data<float>();
  float* gwp = grad_w.data<float>();
  const bool unit_stride = g.sh == 1 && g.sw == 1;
  const Geometry t = TransposeGeometry(g);
  const int64_t grad_stride = PaddedSize(t);
  // Input gradient: one input plane per iteration from its M output planes (no shared writes). Stride 1: the
  // transposed conv as a conv of the padded output gradients with the flipped kernels (depthwise_rows.h).
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> grad_padded(unit_stride ? 0 : PaddedSize(g)), grads(unit_stride ? g.m * grad_stride : 0),
        flipped(unit_stride ? g.m * taps : 0);
#pragma omp for schedule(static)
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
      const int64_t b = plane / g.c, c = plane % g.c;
      if (unit_stride) {
        for (int64_t m = 0; m < g.m; ++m) {
          const int64_t o = c * g.m + m;
          for (int64_t q = 0; q < taps; ++q) flipped[m * taps + q] = wp[o * taps + taps - 1 - q];
          PadPlane(t, gp + (b * channels_out + o) * out_plane, grads.data() + m * grad_stride);
        }
        TransposedConvToInput(g, grads.data(), grad_stride, flipped.data(), g.m, gxp + plane * g.h * g.w);
      } else {
        std::fill(grad_padded.begin(), grad_padded.end(), 0.0f);
        for (int64_t m = 0; m < g.m; ++m) {
          const int64_t o = c * g.m + m;
          ScatterPaddedPlane(g, gp + (b * channels_out + o) * out_plane, wp + o * taps, grad_padded.data());
        }
        UnpadPlane(g, grad_padded.data(), gxp + plane * g.h * g.w);
      }
    }
  }
  // Weight gradient: one output channel per iteration, the batch summed in order (float per image, double total).
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> padded(PaddedSize(g));
    std::vector<double> acc(taps);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < channels_out; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t b = 0; b < g.n; ++b) {
        PadPlane(g, xp + (b * g.c + o / g.m) * g.h * g.w, padded.data());
        CorrelatePaddedPlane(g, padded.data(), gp + (b * channels_out + o) * out_plane, acc.data());
      }
      for (int64_t q = 0; q < taps; ++q) gwp[o * taps + q] = static_cast<float>(acc[q]);
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
