// Dense 2-D convolution on the CPU for training, forward and backward: NCHW float32, groups 1, stride 1, dilation 1,
// an odd K x K kernel with "same" zero padding K/2 (the 3x3 convs of the DB neck and head).
//
// Why: Paddle 3.3's CPU conv (im2col + GEMM) runs these layers at 12-13 GFLOP/s -- 96 -> 24 channels at 160x160,
// batch 4: 156 ms forward, 354 ms backward at 2 threads, where a GEMM reaches 290 GFLOP/s -- and its forward and
// backward were a third of a PP-OCRv5_mobile_det training step. Here the input is zero-padded once, and each output
// block (4 output channels x 16 columns of a row) accumulates every input channel and tap in registers: one input
// load feeds 4 multiply-adds. The input gradient is the same loop on the padded output gradient with the kernels
// flipped and transposed; the weight gradient correlates plane pairs with the depthwise kernels' loop
// (depthwise_rows.h), summed in double across images. Every reduction runs in a fixed order: deterministic.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "depthwise_rows.h"
#include "paddle/extension.h"

namespace {

constexpr int kOutBlock = 4;   // output channels per register block
constexpr int kLanes = 16;     // columns per register block (one AVX-512 vector)

struct Shape {
  int64_t n, c, h, w, o, k, p;  // batch, in channels, height, width, out channels, kernel, padding (k / 2)
  int64_t ph() const { return h + 2 * p; }
  int64_t pw() const { return w + 2 * p; }
};

// dst[n, c] = src[n, c] zero-padded by p on every side.
void Pad(const float* src, int64_t planes, int64_t h, int64_t w, int64_t p, float* dst, int threads) {
  const int64_t ph = h + 2 * p, pw = w + 2 * p;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < planes; ++i) {
    float* out = dst + i * ph * pw;
    std::fill(out, out + ph * pw, 0.0f);
    for (int64_t y = 0; y < h; ++y) std::copy(src + (i * h + y) * w, src + (i * h + y + 1) * w, out + (y + p) * pw + p);
  }
}

// B columns of row y for OB output channels: out[j][l] = sum_c sum_taps w[j, c, tap] * padded[c, y + ky, x0 + l + kx].
template <int OB, int B>
inline void ConvBlock(const float* padded, int64_t c_in, int64_t ph, int64_t pw, const float* w, int64_t k,
                      int64_t y, int64_t x0, float* const* out) {
  float acc[OB][B] = {};
  for (int64_t c = 0; c < c_in; ++c) {
    const float* plane = padded + c * ph * pw;
    const float* wc = w + c * k * k;
    for (int64_t ky = 0; ky < k; ++ky) {
      const float* row = plane + (y + ky) * pw + x0;
      for (int64_t kx = 0; kx < k; ++kx) {
        for (int j = 0; j < OB; ++j) {
          const float wv = wc[j * c_in * k * k + ky * k + kx];
#pragma omp simd
          for (int l = 0; l < B; ++l) acc[j][l] += wv * row[l + kx];
        }
      }
    }
  }
  for (int j = 0; j < OB; ++j) {
#pragma omp simd
    for (int l = 0; l < B; ++l) out[j][l] = acc[j][l];
  }
}

template <int OB>
void ConvRow(const float* padded, int64_t c_in, int64_t ph, int64_t pw, const float* w, int64_t k, int64_t y,
             int64_t width, float* const* out_rows) {
  float* out[OB];
  int64_t x0 = 0;
  for (; x0 + kLanes <= width; x0 += kLanes) {
    for (int j = 0; j < OB; ++j) out[j] = out_rows[j] + x0;
    ConvBlock<OB, kLanes>(padded, c_in, ph, pw, w, k, y, x0, out);
  }
  for (; x0 < width; ++x0) {
    for (int j = 0; j < OB; ++j) out[j] = out_rows[j] + x0;
    ConvBlock<OB, 1>(padded, c_in, ph, pw, w, k, y, x0, out);
  }
}

// out [N, O, H, W] = "same" correlation of the padded input [N, C, H+2p, W+2p] with w [O, C, K, K].
void ConvForward(const float* padded, const float* w, const Shape& s, float* out, int threads) {
  const int64_t blocks = (s.o + kOutBlock - 1) / kOutBlock;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t b = 0; b < s.n; ++b) {
    for (int64_t ob = 0; ob < blocks; ++ob) {
      const float* in = padded + b * s.c * s.ph() * s.pw();
      const int64_t o0 = ob * kOutBlock, count = std::min<int64_t>(kOutBlock, s.o - o0);
      const float* wb = w + o0 * s.c * s.k * s.k;
      for (int64_t y = 0; y < s.h; ++y) {
        float* rows[kOutBlock];
        for (int64_t j = 0; j < count; ++j) rows[j] = out + ((b * s.o + o0 + j) * s.h + y) * s.w;
        if (count == kOutBlock) {
          ConvRow<kOutBlock>(in, s.c, s.ph(), s.pw(), wb, s.k, y, s.w, rows);
        } else {
          for (int64_t j = 0; j < count; ++j)
            ConvRow<1>(in, s.c, s.ph(), s.pw(), wb + j * s.c * s.k * s.k, s.k, y, s.w, rows + j);
        }
      }
    }
  }
}

// Weight gradient: gw[o, c, tap] = sum over images of the correlation of grad_out[n, o] with the padded input
// plane x[n, c] -- per plane pair, the depthwise kernels' loop (wb_depthwise::CorrelatePaddedPlane: 3x3 and 5x5 keep
// every tap's 16 lanes in registers, one gradient-row load serving all taps), summed per image in float and across
// images in double, in order: independent of the thread count. One task per (input, output channel), tasks of the
// same input channel one after the other on a thread (its padded planes stay in cache). Measured (bwd of the DB
// head's stacked conv, 96 -> 48 at 160x160, batch 4, 2 threads): 202-212 ms, against 299-348 with the taps' lanes in
// memory and 271-294 with 2 or 4 output channels per task (their 18-36 accumulators spill).
void WeightGrad(const float* padded, const float* gp, const Shape& s, float* gw, int threads) {
  const wb_depthwise::Geometry plane{s.n, s.c, 1, s.h, s.w, s.k, s.k, s.h, s.w, 1, 1, s.p, s.p};
  const int64_t taps = s.k * s.k;
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> total(taps);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < s.c * s.o; ++task) {
      const int64_t c = task / s.o, o = task % s.o;
      std::fill(total.begin(), total.end(), 0.0);
      for (int64_t b = 0; b < s.n; ++b) {
        wb_depthwise::CorrelatePaddedPlane(plane, padded + (b * s.c + c) * s.ph() * s.pw(),
                                           gp + (b * s.o + o) * s.h * s.w, total.data());
      }
      for (int64_t t = 0; t < taps; ++t) gw[(o * s.c + c) * taps + t] = static_cast<float>(total[t]);
    }
  }
}

Shape MakeShape(const paddle::Tensor& x, const paddle::Tensor& weight) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "dense conv: CPU float32 only");
  const auto xs = x.shape();
  const auto ws = weight.shape();
  PD_CHECK(xs.size() == 4 && ws.size() == 4 && ws[1] == xs[1] && ws[2] == ws[3] && ws[2] % 2 == 1,
           "dense conv: x [N,C,H,W], weight [O,C,K,K] with K odd");
  return Shape{xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[2] / 2};
}

}  // namespace

std::vector<paddle::Tensor> DenseConvForward(const paddle::Tensor& x, const paddle::Tensor& weight, int threads) {
  const Shape s = MakeShape(x, weight);
  std::vector<float> padded(s.n * s.c * s.ph() * s.pw());
  Pad(x.data<float>(), s.n * s.c, s.h, s.w, s.p, padded.data(), threads);
  auto out = paddle::empty({s.n, s.o, s.h, s.w}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  ConvForward(padded.data(), weight.data<float>(), s, out.data<float>(), threads);
  return {out};
}

std::vector<paddle::Tensor> DenseConvBackward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                              const paddle::Tensor& grad_out, int threads) {
  const Shape s = MakeShape(x, weight);
  const int64_t taps = s.k * s.k;
  const float* wp = weight.data<float>();
  // Input gradient: the "same" correlation of the padded output gradient with the flipped, transposed kernels.
  std::vector<float> flipped(s.c * s.o * taps);
  for (int64_t o = 0; o < s.o; ++o)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t t = 0; t < taps; ++t) flipped[(c * s.o + o) * taps + t] = wp[(o * s.c + c) * taps + taps - 1 - t];
  std::vector<float> grad_padded(s.n * s.o * s.ph() * s.pw());
  Pad(grad_out.data<float>(), s.n * s.o, s.h, s.w, s.p, grad_padded.data(), threads);
  auto grad_x = paddle::empty({s.n, s.c, s.h, s.w}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const Shape t{s.n, s.o, s.h, s.w, s.c, s.k, s.p};
  ConvForward(grad_padded.data(), flipped.data(), t, grad_x.data<float>(), threads);
  // Weight gradient: gw[o, c, ky, kx] = sum over n, y, x of grad_out[n, o, y, x] * padded_x[n, c, y + ky, x + kx].
  std::vector<float> padded(s.n * s.c * s.ph() * s.pw());
  Pad(x.data<float>(), s.n * s.c, s.h, s.w, s.p, padded.data(), threads);
  auto grad_w = paddle::empty({s.o, s.c, s.k, s.k}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  WeightGrad(padded.data(), grad_out.data<float>(), s, grad_w.data<float>(), threads);
  return {grad_x, grad_w};
}

PD_BUILD_OP(wb_dense_conv2d)
    .Inputs({"X", "Weight"})
    .Outputs({"Out"})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(DenseConvForward));

PD_BUILD_GRAD_OP(wb_dense_conv2d)
    .Inputs({"X", "Weight", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Weight")})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(DenseConvBackward));
