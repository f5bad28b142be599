// A re-parameterisable layer's branches folded into one conv kernel and bias, forward and backward, on the CPU:
//   wb_rep_fold(W[], gamma[], beta[], mean[], var[], lab_scale, lab_bias; eps, kernel_size, has_identity,
//               in_per_group, threads)
//     -> kernel = a * sum_b W_b * s_b,  bias = a * sum_b (beta_b - mean_b * s_b) + c,
//        s_b = gamma_b / sqrt(var_b + eps)
// where W[] are the kxk and 1x1 branch weights (a 1x1 weight lands on the centre tap) and, with has_identity, the
// last BN entry is the identity branch (channel o reads input channel o % in_per_group at the centre tap); a, c are
// the learnable affine (`lab`). Why: with frozen BatchNorms (the recipes' fine-tunes of imported weights) every
// training step folds every rep layer this way; in Paddle ops that is ~40 small ops and ~40 gradient nodes per layer
// (28 layers in PP-OCRv5_mobile_rec: 63 ms of a step, forward + backward; 29 ms with this op), whose cost is the
// call, not the data.
// The forward computes in float32 in the same order, each operation correctly rounded (no fused multiply-add), so
// the folded kernel is within an ulp of Paddle's (whose CPU sqrt is not correctly rounded). The backward
// (gradients of every W_b, gamma_b, beta_b, a, c):
//   dK' = a dK, dB' = a dB;  dW_b = dK'[region] * s_b;  ds_b = sum(dK'[region] * W_b) - mean_b dB';
//   dgamma_b = ds_b / sqrt(var_b + eps);  dbeta_b = dB';  da = sum(dK * K0) + sum(dB * B0);  dc = sum(dB)
// with K0, B0 the kernel and bias before the affine (never formed: see RepFoldBackward).
#pragma GCC optimize("fp-contract=off")

#include <omp.h>

#include <cmath>
#include <vector>

#include "paddle/extension.h"

namespace {

// The layer's shape and its branches' raw pointers; branch b < weights is a kxk (or, the last with has_1x1, a 1x1)
// conv, the one after them the identity.
struct Fold {
  int64_t out, in, k, taps, per_out, centre, in_per_group;
  bool has_1x1, has_identity;
  std::vector<const float*> w, gamma, beta, mean, var;
  float eps;

  float Root(size_t b, int64_t o) const { return std::sqrt(var[b][o] + eps); }
  bool IsWeight(size_t b) const { return b < w.size(); }
  bool Is1x1(size_t b) const { return has_1x1 && b + 1 == w.size(); }
};

Fold Make(const std::vector<paddle::Tensor>& weights, const std::vector<paddle::Tensor>& gamma,
          const std::vector<paddle::Tensor>& beta, const std::vector<paddle::Tensor>& mean,
          const std::vector<paddle::Tensor>& var, float eps, int kernel_size, bool has_identity, int in_per_group) {
  PD_CHECK(!weights.empty() || has_identity, "rep fold: no branch");
  const size_t n_bn = weights.size() + (has_identity ? 1 : 0);
  PD_CHECK(gamma.size() == n_bn && beta.size() == n_bn && mean.size() == n_bn && var.size() == n_bn,
           "rep fold: one BN per branch");
  Fold f;
  f.out = gamma[0].numel();
  f.in = in_per_group;
  f.k = kernel_size;
  f.taps = static_cast<int64_t>(kernel_size) * kernel_size;
  f.per_out = f.in * f.taps;
  f.centre = (f.k / 2) * f.k + f.k / 2;
  f.in_per_group = in_per_group;
  f.has_identity = has_identity;
  f.has_1x1 = !weights.empty() && weights.back().shape()[2] == 1 && kernel_size != 1;
  f.eps = eps;
  for (const auto& t : weights) {
    const auto s = t.shape();
    PD_CHECK(t.is_cpu() && t.dtype() == paddle::DataType::FLOAT32, "rep fold: CPU float32 only");
    PD_CHECK(s.size() == 4 && s[0] == f.out && s[1] == f.in && s[2] == s[3] && (s[2] == kernel_size || s[2] == 1),
             "rep fold: weights must be [O, I, k, k] or [O, I, 1, 1]");
    f.w.push_back(t.data<float>());
  }
  for (size_t b = 0; b < n_bn; ++b) {
    PD_CHECK(gamma[b].numel() == f.out && beta[b].numel() == f.out && mean[b].numel() == f.out &&
                 var[b].numel() == f.out, "rep fold: BN parameters must have one value per output channel");
    f.gamma.push_back(gamma[b].data<float>());
    f.beta.push_back(beta[b].data<float>());
    f.mean.push_back(mean[b].data<float>());
    f.var.push_back(var[b].data<float>());
  }
  return f;
}

// Output channel o of K0 (before the affine) into kt[per_out], its B0 returned: branches in order, then identity.
float FoldChannel(const Fold& f, int64_t o, float* kt) {
  float bias = 0.0f;
  const size_t n_bn = f.gamma.size();
  for (size_t b = 0; b < n_bn; ++b) {
    const float s = f.gamma[b][o] / f.Root(b, o);
    const float shift = f.beta[b][o] - f.mean[b][o] * s;
    const bool first = b == 0;
    bias = first ? shift : bias + shift;
    if (f.IsWeight(b) && !f.Is1x1(b)) {
      const float* wt = f.w[b] + o * f.per_out;
      if (first) {
#pragma omp simd
        for (int64_t j = 0; j < f.per_out; ++j) kt[j] = wt[j] * s;
      } else {
#pragma omp simd
        for (int64_t j = 0; j < f.per_out; ++j) kt[j] = kt[j] + wt[j] * s;
      }
    } else {
      if (first) {
        for (int64_t j = 0; j < f.per_out; ++j) kt[j] = 0.0f;
      }
      if (f.IsWeight(b)) {  // the 1x1 branch, on the centre taps (its padded taps add zeros)
        const float* wt = f.w[b] + o * f.in;
        for (int64_t i = 0; i < f.in; ++i) kt[i * f.taps + f.centre] = kt[i * f.taps + f.centre] + wt[i] * s;
      } else {  // identity: one at (o, o % in_per_group, centre)
        float& tap = kt[(o % f.in_per_group) * f.taps + f.centre];
        tap = tap + s;
      }
    }
  }
  return bias;
}

}  // namespace

std::vector<paddle::Tensor> RepFold(const std::vector<paddle::Tensor>& weights,
                                    const std::vector<paddle::Tensor>& gamma, const std::vector<paddle::Tensor>& beta,
                                    const std::vector<paddle::Tensor>& mean, const std::vector<paddle::Tensor>& var,
                                    const paddle::Tensor& lab_scale, const paddle::Tensor& lab_bias, float eps,
                                    int kernel_size, bool has_identity, int in_per_group, int threads) {
  const Fold f = Make(weights, gamma, beta, mean, var, eps, kernel_size, has_identity, in_per_group);
  auto kernel = paddle::empty({f.out, f.in, f.k, f.k}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto bias = paddle::empty({f.out}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  float* kp = kernel.data<float>();
  float* bp = bias.data<float>();
  const float a = lab_scale.data<float>()[0], c = lab_bias.data<float>()[0];
#pragma omp parallel for num_threads(threads) schedule(static) if (f.out * f.per_out > 16384)
  for (int64_t o = 0; o < f.out; ++o) {
    float* kt = kp + o * f.per_out;
    const float b0 = FoldChannel(f, o, kt);
#pragma omp simd
    for (int64_t j = 0; j < f.per_out; ++j) kt[j] = kt[j] * a;
    const float t = b0 * a;
    bp[o] = t + c;
  }
  return {kernel, bias};
}

// Fixed outputs (a plain op's output count is fixed): the kxk weights' gradients stacked [n_kxk, O, I, k, k], the
// 1x1 weight's (or an empty tensor), dgamma and dbeta as [branches, O], d lab as [scale, bias]; the caller unbinds.
// With acc_b[o] = sum(dK[o] * W_b[o]) (the incoming dK, before the affine's scale): ds_b = a acc_b - mean_b a dB,
// and da = sum(dK * K0) + sum(dB * B0) = sum_b sum_o s_b acc_b + sum_o dB B0 (K0 linear in the W_b), so K0 is never
// formed.
std::vector<paddle::Tensor> RepFoldBackward(const std::vector<paddle::Tensor>& weights,
                                            const std::vector<paddle::Tensor>& gamma,
                                            const std::vector<paddle::Tensor>& beta,
                                            const std::vector<paddle::Tensor>& mean,
                                            const std::vector<paddle::Tensor>& var, const paddle::Tensor& lab_scale,
                                            const paddle::Tensor& grad_kernel, const paddle::Tensor& grad_bias,
                                            float eps, int kernel_size, bool has_identity, int in_per_group,
                                            int threads) {
  const Fold f = Make(weights, gamma, beta, mean, var, eps, kernel_size, has_identity, in_per_group);
  PD_CHECK(grad_kernel.numel() == f.out * f.per_out && grad_bias.numel() == f.out, "rep fold: gradient shapes");
  const float a = lab_scale.data<float>()[0];
  const float* dk = grad_kernel.data<float>();
  const float* db = grad_bias.data<float>();
  const int64_t n_bn = static_cast<int64_t>(f.gamma.size());
  const int64_t n_kxk = static_cast<int64_t>(f.w.size()) - (f.has_1x1 ? 1 : 0);
  auto g_kxk = paddle::empty({n_kxk, f.out, f.in, f.k, f.k}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto g_1x1 = f.has_1x1 ? paddle::empty({f.out, f.in, 1, 1}, paddle::DataType::FLOAT32, paddle::CPUPlace())
                         : paddle::empty({0}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto g_gamma = paddle::empty({n_bn, f.out}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto g_beta = paddle::empty({n_bn, f.out}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto g_lab = paddle::empty({2}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  float* gk = g_kxk.data<float>();
  float* g1 = f.has_1x1 ? g_1x1.data<float>() : nullptr;
  float* gg = g_gamma.data<float>();
  float* gb = g_beta.data<float>();
  std::vector<double> da_channel(f.out);
#pragma omp parallel for num_threads(threads) schedule(static) if (f.out * f.per_out > 16384)
  for (int64_t o = 0; o < f.out; ++o) {
    const float* dkt = dk + o * f.per_out;
    const float dbo = db[o] * a;
    double da = 0.0, b0 = 0.0;
    for (int64_t b = 0; b < n_bn; ++b) {
      const float root = f.Root(b, o);
      const float s = f.gamma[b][o] / root;
      b0 += static_cast<double>(f.beta[b][o] - f.mean[b][o] * s);
      double acc = 0.0;
      if (f.IsWeight(b) && !f.Is1x1(b)) {
        const float* wt = f.w[b] + o * f.per_out;
        float* dwt = gk + (b * f.out + o) * f.per_out;
        float partial = 0.0f;
#pragma omp simd reduction(+ : partial)
        for (int64_t j = 0; j < f.per_out; ++j) {
          dwt[j] = (dkt[j] * a) * s;
          partial += dkt[j] * wt[j];
        }
        acc = partial;
      } else if (f.IsWeight(b)) {
        const float* wt = f.w[b] + o * f.in;
        float* dwt = g1 + o * f.in;
        for (int64_t i = 0; i < f.in; ++i) {
          const float d = dkt[i * f.taps + f.centre];
          dwt[i] = (d * a) * s;
          acc += static_cast<double>(d) * wt[i];
        }
      } else {
        acc = dkt[(o % f.in_per_group) * f.taps + f.centre];
      }
      da += static_cast<double>(s) * acc;
      const double d_scale = static_cast<double>(a) * acc - static_cast<double>(f.mean[b][o]) * dbo;
      gg[b * f.out + o] = static_cast<float>(d_scale / root);
      gb[b * f.out + o] = dbo;
    }
    da_channel[o] = da + static_cast<double>(db[o]) * b0;
  }
  double da = 0.0, dc = 0.0;
  for (int64_t o = 0; o < f.out; ++o) {
    da += da_channel[o];
    dc += db[o];
  }
  g_lab.data<float>()[0] = static_cast<float>(da);
  g_lab.data<float>()[1] = static_cast<float>(dc);
  return {g_kxk, g_1x1, g_gamma, g_beta, g_lab};
}

// Plain ops: models.backbones.pplcnetv3 writes the autograd node (one PyLayer per layer) around them.
PD_BUILD_OP(wb_rep_fold)
    .Inputs({paddle::Vec("W"), paddle::Vec("Gamma"), paddle::Vec("Beta"), paddle::Vec("Mean"), paddle::Vec("Var"),
             "LabScale", "LabBias"})
    .Outputs({"Kernel", "Bias"})
    .Attrs({"eps: float", "kernel_size: int", "has_identity: bool", "in_per_group: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(RepFold));

PD_BUILD_OP(wb_rep_fold_bwd)
    .Inputs({paddle::Vec("W"), paddle::Vec("Gamma"), paddle::Vec("Beta"), paddle::Vec("Mean"), paddle::Vec("Var"),
             "LabScale", "GradKernel", "GradBias"})
    .Outputs({"GradKxk", "Grad1x1", "GradGamma", "GradBeta", "GradLab"})
    .Attrs({"eps: float", "kernel_size: int", "has_identity: bool", "in_per_group: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(RepFoldBackward));
