// A training-time linear layer's GEMM on the CPU, forward and backward, float32, in oneDNN (the libdnnl Paddle's wheel
// bundles) instead of MKL: y [R, O] = x [R, K] w [K, O]; the bias rides in as a column of ones in x and a row of w
// (models.ops.linear_bias_in_gemm).
//
// Why: the CTC head's [N * T, 121] x [121, 18385] projection and its two gradient GEMMs are the largest matmuls of a
// PP-OCRv5_mobile_rec step, and on AMD CPUs MKL runs its generic code path (50-82 GFLOP/s at 2 threads on Zen 4,
// oneDNN 180-223 on the same shapes; see pointwise_conv.cc). Each GEMM runs on oneDNN's threads with a fixed split
// for a given shape and thread count: the same bits for the same thread count.
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

namespace {

void CheckLinear(const paddle::Tensor& x, const paddle::Tensor& w, const char* op) {
  PD_CHECK(x.is_cpu() && w.is_cpu(), op, ": CPU tensors only");
  PD_CHECK(x.dtype() == paddle::DataType::FLOAT32 && w.dtype() == paddle::DataType::FLOAT32, op,
           ": float32 tensors only");
  PD_CHECK(x.shape().size() == 2 && w.shape().size() == 2 && x.shape()[1] == w.shape()[0], op,
           ": x [R, K] and w [K, O] expected");
}

void CheckStatus(int status) { PD_CHECK(status == 0, "wb_linear: oneDNN GEMM failed (status ", status, ")"); }

}  // namespace

std::vector<paddle::Tensor> Linear(const paddle::Tensor& x, const paddle::Tensor& w) {
  CheckLinear(x, w, "wb_linear");
  const int64_t r = x.shape()[0], k = x.shape()[1], o = w.shape()[1];
  auto y = paddle::empty({r, o}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  CheckStatus(dnnl_sgemm('N', 'N', r, o, k, 1.0f, x.data<float>(), k, w.data<float>(), o, 0.0f, y.data<float>(), o));
  return {y};
}

std::vector<paddle::Tensor> LinearBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                           const paddle::Tensor& grad_y) {
  CheckLinear(x, w, "wb_linear_grad");
  const int64_t r = x.shape()[0], k = x.shape()[1], o = w.shape()[1];
  auto grad_x = paddle::empty({r, k}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_w = paddle::empty({k, o}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* gy = grad_y.data<float>();
  // dX = dY W^T, dW = X^T dY
  CheckStatus(dnnl_sgemm('N', 'T', r, k, o, 1.0f, gy, o, w.data<float>(), o, 0.0f, grad_x.data<float>(), k));
  CheckStatus(dnnl_sgemm('T', 'N', k, o, r, 1.0f, x.data<float>(), k, gy, o, 0.0f, grad_w.data<float>(), o));
  return {grad_x, grad_w};
}

PD_BUILD_OP(wb_linear)
    .Inputs({"X", "W"})
    .Outputs({"Y"})
    .SetKernelFn(PD_KERNEL(Linear));

PD_BUILD_GRAD_OP(wb_linear)
    .Inputs({"X", "W", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W")})
    .SetKernelFn(PD_KERNEL(LinearBackward));
