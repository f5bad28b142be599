// One Adam step (with L2 weight decay added to the gradient) over every parameter of a model in one call. Paddle's
// optimizer runs, per parameter, a Python bookkeeping pass, a scale and an add_n for the decay and the adam_ kernel:
// 52-58 ms a PP-OCRv5_mobile_rec step at 2 threads (582 parameters, 7.7M values); this op 19-22 ms (bound by the
// 215 MB it reads and writes), the whole step 25-28 ms. The update is Paddle's
// CPU Adam: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t), eps_t = eps * sqrt(1 - beta2^t),
// m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2, p -= lr_t m / (sqrt(v) + eps_t), with each
// parameter's own beta powers (a parameter without a gradient on some step keeps its count, as in Paddle) and its
// own learning rate (the global one times its ``optimize_attr`` multiplier: PPLCNetV3's affine blocks train at 0.1x).
// The result equals Paddle's AVX-512 kernel's bit for bit (tests/test_engine_fused_adam.py).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "flat_shares.h"
#include "paddle/extension.h"

namespace {

struct Slot {
  float* p;
  const float* g;
  float* m;
  float* v;
  float decay;
  float lr;   // lr_t
  float eps;  // eps_t
};

// Paddle's CPU kernel's order of operations and roundings (its AVX-512 code: fused multiply-adds for the moments and
// the parameter, the decay added as a separate op), so that the result equals it bit for bit; no other contraction.
__attribute__((optimize("fp-contract=off"))) void AdamRange(const Slot& s, int64_t lo, int64_t hi, float beta1,
                                                           float beta2) {
  // the four arrays never overlap
  float* __restrict__ p = s.p;
  const float* __restrict__ gr = s.g;
  float* __restrict__ m1 = s.m;
  float* __restrict__ m2 = s.v;
  const float decay = s.decay, lr = s.lr, eps = s.eps;
  const float one_minus_beta1 = 1.0f - beta1, one_minus_beta2 = 1.0f - beta2, neg_lr = -lr;
  for (int64_t k = lo; k < hi; ++k) {
    const float g = gr[k] + decay * p[k];  // L2Decay: grad + coeff * param
    const float m = std::fma(beta1, m1[k], one_minus_beta1 * g);
    const float v = std::fma(beta2, m2[k], one_minus_beta2 * (g * g));
    m1[k] = m;
    m2[k] = v;
    p[k] = std::fma(m / (std::sqrt(v) + eps), neg_lr, p[k]);
  }
}

}  // namespace

void AdamUpdate(std::vector<paddle::Tensor>& params, const std::vector<paddle::Tensor>& grads,
                std::vector<paddle::Tensor>& moment1, std::vector<paddle::Tensor>& moment2,
                std::vector<paddle::Tensor>& beta1_pow, std::vector<paddle::Tensor>& beta2_pow,
                const paddle::Tensor& lr, const paddle::Tensor& decay, float beta1, float beta2, float epsilon,
                int threads) {
  const size_t n = params.size();
  PD_CHECK(grads.size() == n && moment1.size() == n && moment2.size() == n && beta1_pow.size() == n &&
               beta2_pow.size() == n && lr.numel() == static_cast<int64_t>(n) &&
               decay.numel() == static_cast<int64_t>(n),
           "wb_adam_update: ", n, " parameters but ", grads.size(), " gradients, ", moment1.size(), "/",
           moment2.size(), " moments, ", beta1_pow.size(), "/", beta2_pow.size(), " beta powers, ", lr.numel(),
           " learning rates, ", decay.numel(), " decay coefficients");
  const float* rate = lr.data<float>();
  const float* coeff = decay.data<float>();
  std::vector<Slot> slots(n);
  std::vector<int64_t> start(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    const int64_t numel = params[i].numel();
    PD_CHECK(grads[i].numel() == numel && moment1[i].numel() == numel && moment2[i].numel() == numel,
             "wb_adam_update: parameter ", i, " has ", numel, " values, its gradient or moments differ");
    const paddle::Tensor* all[] = {&params[i], &grads[i], &moment1[i], &moment2[i], &beta1_pow[i], &beta2_pow[i]};
    for (const paddle::Tensor* t : all) {
      PD_CHECK(t->is_cpu() && t->dtype() == paddle::DataType::FLOAT32, "wb_adam_update: CPU float32 tensors only");
    }
    float* b1 = beta1_pow[i].data<float>();
    float* b2 = beta2_pow[i].data<float>();
    const float b1p = b1[0], b2p = b2[0];
    slots[i] = Slot{params[i].data<float>(), grads[i].data<float>(), moment1[i].data<float>(),
                    moment2[i].data<float>(), coeff[i],
                    // in float, as Paddle's kernel computes them
                    rate[i] * (std::sqrt(1.0f - b2p) / (1.0f - b1p)), epsilon * std::sqrt(1.0f - b2p)};
    b1[0] = beta1 * b1p;
    b2[0] = beta2 * b2p;
    start[i + 1] = start[i] + numel;
  }
  ForEachFlatShare(start, threads, [&](size_t i, int64_t lo, int64_t hi) {
    AdamRange(slots[i], lo, hi, beta1, beta2);
  });
}

PD_BUILD_OP(wb_adam_update)
    .Inputs({paddle::Vec("Param"), paddle::Vec("Grad"), paddle::Vec("Moment1"), paddle::Vec("Moment2"),
             paddle::Vec("Beta1Pow"), paddle::Vec("Beta2Pow"), "Lr", "Decay"})
    .Outputs({paddle::Vec("ParamOut"), paddle::Vec("Moment1Out"), paddle::Vec("Moment2Out"),
              paddle::Vec("Beta1PowOut"), paddle::Vec("Beta2PowOut")})
    .Attrs({"beta1: float", "beta2: float", "epsilon: float", "threads: int"})
    .SetInplaceMap({{paddle::Vec("Param"), paddle::Vec("ParamOut")},
                    {paddle::Vec("Moment1"), paddle::Vec("Moment1Out")},
                    {paddle::Vec("Moment2"), paddle::Vec("Moment2Out")},
                    {paddle::Vec("Beta1Pow"), paddle::Vec("Beta1PowOut")},
                    {paddle::Vec("Beta2Pow"), paddle::Vec("Beta2PowOut")}})
    .SetKernelFn(PD_KERNEL(AdamUpdate));
