// Pointwise (1x1, stride 1, groups 1) convolution on the CPU for training, forward and backward, NCHW float32, as
// GEMMs of oneDNN (the libdnnl Paddle's wheel bundles) instead of MKL's.
//
// Why: on AMD CPUs MKL runs its generic code path (Zen 4, 2 threads: 50-82 GFLOP/s on 96-1536-wide single-precision
// GEMMs, in its COMPATIBLE reproducible mode and without one) where oneDNN's just-in-time AVX-512 GEMM reaches
// 180-223 GFLOP/s on the same shapes (2026-12-07); MKL's GEMMs were 52 % of a PP-OCRv5_mobile_rec fine-tuning
// step there, most of them the backbone's pointwise layers. Each image is one GEMM (W [O, C] x X[n] [C, HW]); images
// are split statically over the threads, each GEMM on one thread, so a result never depends on which thread ran it.
// The weight gradient sums one partial per thread (its images in order), then the partials in thread order: the
// same bits for the same thread count.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

namespace {

struct Shape {
  int64_t n, c, hw, o;
};

Shape CheckShapes(const paddle::Tensor& x, const paddle::Tensor& w, const char* op) {
  PD_CHECK(x.is_cpu() && w.is_cpu(), op, ": CPU tensors only");
  PD_CHECK(x.dtype() == paddle::DataType::FLOAT32 && w.dtype() == paddle::DataType::FLOAT32, op,
           ": float32 tensors only");
  const auto xs = x.shape(), ws = w.shape();
  PD_CHECK(xs.size() == 4, op, ": x must be NCHW");
  PD_CHECK(ws.size() == 4 && ws[2] == 1 && ws[3] == 1 && ws[1] == xs[1], op, ": weight must be [O, C, 1, 1] for ",
           xs[1], " input channels");
  return {xs[0], xs[1], xs[2] * xs[3], ws[0]};
}

// The images [lo, hi) of thread t of `threads` (static, contiguous: the split depends on n and threads only).
inline void ImageRange(int64_t n, int threads, int t, int64_t* lo, int64_t* hi) {
  const int64_t base = n / threads, extra = n % threads;
  *lo = t * base + std::min<int64_t>(t, extra);
  *hi = *lo + base + (t < extra ? 1 : 0);
}

void Check(int status, const char* what) {
  PD_CHECK(status == 0, "wb_pointwise_conv2d: oneDNN ", what, " failed (status ", status, ")");
}

}  // namespace

std::vector<paddle::Tensor> PointwiseConv(const paddle::Tensor& x, const paddle::Tensor& w, int threads) {
  const Shape s = CheckShapes(x, w, "wb_pointwise_conv2d");
  const auto xs = x.shape();
  auto y = paddle::empty({s.n, s.o, xs[2], xs[3]}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  float* yp = y.data<float>();
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, s.n)));
  std::vector<int> status(nt, 0);
#pragma omp parallel num_threads(nt)
  {
    // split over the threads the runtime gave (fewer than asked inside another parallel region): no image left out
    const int t = omp_get_thread_num();
    int64_t lo, hi;
    ImageRange(s.n, omp_get_num_threads(), t, &lo, &hi);
    for (int64_t b = lo; b < hi && status[t] == 0; ++b)
      status[t] = dnnl_sgemm('N', 'N', s.o, s.hw, s.c, 1.0f, wp, s.c, xp + b * s.c * s.hw, s.hw, 0.0f,
                             yp + b * s.o * s.hw, s.hw);
  }
  for (int st : status) Check(st, "GEMM");
  return {y};
}

std::vector<paddle::Tensor> PointwiseConvBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                                  const paddle::Tensor& grad_y, int threads) {
  const Shape s = CheckShapes(x, w, "wb_pointwise_conv2d_grad");
  auto grad_x = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_w = paddle::empty(w.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  const float* gyp = grad_y.data<float>();
  float* gxp = grad_x.data<float>();
  float* gwp = grad_w.data<float>();
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, s.n)));
  const int64_t wsize = s.o * s.c;
  std::vector<float> partial(static_cast<size_t>(std::max(nt - 1, 0)) * wsize);
  std::vector<int> status(nt, 0);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    int64_t lo, hi;
    ImageRange(s.n, omp_get_num_threads(), t, &lo, &hi);  // partials of threads not given stay zero
    float* gw = t == 0 ? gwp : partial.data() + (t - 1) * wsize;
    if (lo == hi) std::fill(gw, gw + wsize, 0.0f);
    for (int64_t b = lo; b < hi && status[t] == 0; ++b) {
      const float* xb = xp + b * s.c * s.hw;
      const float* gyb = gyp + b * s.o * s.hw;
      // dX[b] = W^T dY[b]
      status[t] = dnnl_sgemm('T', 'N', s.c, s.hw, s.o, 1.0f, wp, s.c, gyb, s.hw, 0.0f, gxp + b * s.c * s.hw, s.hw);
      // dW += dY[b] X[b]^T
      if (status[t] == 0)
        status[t] = dnnl_sgemm('N', 'T', s.o, s.c, s.hw, 1.0f, gyb, s.hw, xb, s.hw, b == lo ? 0.0f : 1.0f, gw, s.c);
    }
  }
  for (int st : status) Check(st, "GEMM");
  for (int t = 1; t < nt; ++t) {
    const float* part = partial.data() + (t - 1) * wsize;
    for (int64_t k = 0; k < wsize; ++k) gwp[k] += part[k];
  }
  return {grad_x, grad_w};
}

PD_BUILD_OP(wb_pointwise_conv2d)
    .Inputs({"X", "W"})
    .Outputs({"Y"})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(PointwiseConv));

PD_BUILD_GRAD_OP(wb_pointwise_conv2d)
    .Inputs({"X", "W", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W")})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(PointwiseConvBackward));
