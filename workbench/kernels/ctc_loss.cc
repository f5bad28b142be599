// CTC loss of unnormalised logits [N, T, C] (float32, CPU) and its gradient w.r.t. the logits, computed together
// (as warp-ctc does): per sample, the negative log-likelihood of its label under a softmax over the C classes.
//
// Why: Paddle 3.3's CPU ctc_loss (warp-ctc) needs the logits as [T, N, C] (a copy of the whole 18k-class tensor) and
// took 370 ms forward + backward for [32, 40, 18385] at 2 threads, 5-13 % of a PP-OCRv5_mobile_rec training step.
// Here each (sample, step) row is read twice (its log-sum-exp; then softmax minus the label occupancies), and the
// alpha-beta recursion runs only over the 2L+1 extended-label states, in double precision.
// One sample per loop iteration, fixed order: deterministic whatever the thread count.
// A label the T steps cannot emit (too long with its repeats) gets an infinite loss and a zero gradient.
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "paddle/extension.h"

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

inline double LogAdd(double a, double b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  return a > b ? a + std::log1p(std::exp(b - a)) : b + std::log1p(std::exp(a - b));
}

template <typename Label>
void CtcSample(const float* logits, const Label* label, int64_t length, int64_t t_steps, int64_t classes, int blank,
               float* loss, float* grad) {
  // log-sum-exp of every step's logits
  std::vector<double> lse(t_steps);
  for (int64_t t = 0; t < t_steps; ++t) {
    const float* row = logits + t * classes;
    float top = row[0];
    for (int64_t c = 1; c < classes; ++c) top = std::max(top, row[c]);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(row[c] - top);
    lse[t] = static_cast<double>(top) + std::log(static_cast<double>(sum));
  }
  // extended label: blank, y1, blank, y2, ..., blank
  const int64_t states = 2 * length + 1;
  std::vector<int64_t> ext(states);
  for (int64_t s = 0; s < states; ++s) ext[s] = (s % 2 == 0) ? blank : static_cast<int64_t>(label[s / 2]);
  auto skip_allowed = [&](int64_t s) { return s >= 2 && ext[s] != blank && ext[s] != ext[s - 2]; };
  auto logp = [&](int64_t t, int64_t s) { return static_cast<double>(logits[t * classes + ext[s]]) - lse[t]; };
  std::vector<double> alpha(t_steps * states, kNegInf), beta(t_steps * states, kNegInf);
  alpha[0] = logp(0, 0);
  if (states > 1) alpha[1] = logp(0, 1);
  for (int64_t t = 1; t < t_steps; ++t) {
    const double* prev = alpha.data() + (t - 1) * states;
    double* cur = alpha.data() + t * states;
    for (int64_t s = 0; s < states; ++s) {
      double a = prev[s];
      if (s >= 1) a = LogAdd(a, prev[s - 1]);
      if (skip_allowed(s)) a = LogAdd(a, prev[s - 2]);
      cur[s] = a == kNegInf ? kNegInf : a + logp(t, s);
    }
  }
  const double* last = alpha.data() + (t_steps - 1) * states;
  const double log_likelihood = states > 1 ? LogAdd(last[states - 1], last[states - 2]) : last[0];
  float* g = grad;
  if (log_likelihood == kNegInf) {  // no alignment fits in T steps
    *loss = std::numeric_limits<float>::infinity();
    std::fill(g, g + t_steps * classes, 0.0f);
    return;
  }
  *loss = static_cast<float>(-log_likelihood);
  // beta[t][s]: log-probability of the rest of the label after step t, from state s (step t's emission excluded)
  double* end = beta.data() + (t_steps - 1) * states;
  end[states - 1] = 0.0;
  if (states > 1) end[states - 2] = 0.0;
  for (int64_t t = t_steps - 2; t >= 0; --t) {
    const double* next = beta.data() + (t + 1) * states;
    double* cur = beta.data() + t * states;
    for (int64_t s = 0; s < states; ++s) {
      double b = next[s] == kNegInf ? kNegInf : next[s] + logp(t + 1, s);
      if (s + 1 < states && next[s + 1] != kNegInf) b = LogAdd(b, next[s + 1] + logp(t + 1, s + 1));
      if (s + 2 < states && skip_allowed(s + 2) && next[s + 2] != kNegInf) b = LogAdd(b, next[s + 2] + logp(t + 1, s + 2));
      cur[s] = b;
    }
  }
  // d(-log P)/d logit[t][c] = softmax[t][c] - sum over states s with ext[s] = c of alpha*beta/P
  std::vector<double> occupancy(states);
  for (int64_t t = 0; t < t_steps; ++t) {
    const float* row = logits + t * classes;
    float* out = g + t * classes;
    const float shift = static_cast<float>(lse[t]);
#pragma omp simd
    for (int64_t c = 0; c < classes; ++c) out[c] = std::exp(row[c] - shift);
    for (int64_t s = 0; s < states; ++s) {
      const double a = alpha[t * states + s], b = beta[t * states + s];
      if (a == kNegInf || b == kNegInf) continue;
      out[ext[s]] -= static_cast<float>(std::exp(a + b - log_likelihood));
    }
  }
}

template <typename Label>
void CtcBatch(const paddle::Tensor& logits, const paddle::Tensor& labels, const int64_t* lengths, int blank,
              int threads, float* loss, float* grad) {
  const auto shape = logits.shape();
  const int64_t n = shape[0], t_steps = shape[1], classes = shape[2], max_length = labels.shape()[1];
  const float* lp = logits.data<float>();
  const Label* yp = labels.data<Label>();
  // Static schedule: GCC's dynamic loops call GOMP_loop_nonmonotonic_dynamic_*, which Paddle's libiomp5 (that the
  // kernels link, see kernels._ldflags) served wrongly -- some samples ran twice at once, racing on their
  // gradient rows (up to 1.0 off at 2 threads; fine-tunes diverged).
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int64_t i = 0; i < n; ++i) {
    CtcSample<Label>(lp + i * t_steps * classes, yp + i * max_length, lengths[i], t_steps, classes, blank, loss + i,
                     grad + i * t_steps * classes);
  }
}

}  // namespace

std::vector<paddle::Tensor> CtcLoss(const paddle::Tensor& logits, const paddle::Tensor& labels,
                                    const paddle::Tensor& label_lengths, int blank, int threads) {
  PD_CHECK(logits.is_cpu() && logits.dtype() == paddle::DataType::FLOAT32, "ctc loss: CPU float32 logits only");
  const auto shape = logits.shape();
  PD_CHECK(shape.size() == 3 && shape[1] > 0 && shape[2] > 0, "ctc loss: logits must be [N, T, C]");
  PD_CHECK(labels.shape().size() == 2 && labels.shape()[0] == shape[0], "ctc loss: labels must be [N, L]");
  PD_CHECK(label_lengths.dtype() == paddle::DataType::INT64 && label_lengths.numel() == shape[0],
           "ctc loss: label_lengths must be int64 [N]");
  PD_CHECK(blank >= 0 && blank < shape[2], "ctc loss: blank out of range");
  const int64_t* lengths = label_lengths.data<int64_t>();
  const int64_t max_length = labels.shape()[1];
  for (int64_t i = 0; i < shape[0]; ++i) {
    PD_CHECK(lengths[i] >= 0 && lengths[i] <= max_length, "ctc loss: a label length is out of range");
    for (int64_t j = 0; j < lengths[i]; ++j) {
      const int64_t y = labels.dtype() == paddle::DataType::INT64 ? labels.data<int64_t>()[i * max_length + j]
                                                                  : labels.data<int32_t>()[i * max_length + j];
      PD_CHECK(y >= 0 && y < shape[2] && y != blank, "ctc loss: a label class is out of range or the blank");
    }
  }
  auto loss = paddle::empty({shape[0]}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad = paddle::empty(shape, paddle::DataType::FLOAT32, paddle::CPUPlace());
  if (labels.dtype() == paddle::DataType::INT64) {
    CtcBatch<int64_t>(logits, labels, lengths, blank, threads, loss.data<float>(), grad.data<float>());
  } else {
    PD_CHECK(labels.dtype() == paddle::DataType::INT32, "ctc loss: labels must be int32 or int64");
    CtcBatch<int32_t>(logits, labels, lengths, blank, threads, loss.data<float>(), grad.data<float>());
  }
  return {loss, grad};
}

PD_BUILD_OP(wb_ctc_loss)
    .Inputs({"Logits", "Labels", "LabelLengths"})
    .Outputs({"Loss", "Grad"})
    .Attrs({"blank: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(CtcLoss));
