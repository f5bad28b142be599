// Per-channel batch statistics of an [N, K, HW] float32 tensor, shared by the BatchNorm and channel-affine kernels.
// One pass, shifted by the channel's first value (no cancellation when |mean| >> std), float per plane and double
// across planes; the variance is the biased one, as Paddle's BatchNorm uses. One channel per loop iteration, each in
// a fixed order: results are deterministic whatever the thread count.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

inline void ChannelMeanVar(const float* x, int64_t n, int64_t k, int64_t hw, float* mean, float* var,
                           int threads) {
  const double count = static_cast<double>(n * hw);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < k; ++c) {
    const float shift = x[c * hw];
    double sum = 0.0, squares = 0.0;
    for (int64_t b = 0; b < n; ++b) {
      const float* plane = x + (b * k + c) * hw;
      float ps = 0.0f, pq = 0.0f;
#pragma omp simd reduction(+ : ps, pq)
      for (int64_t i = 0; i < hw; ++i) {
        const float d = plane[i] - shift;
        ps += d;
        pq += d * d;
      }
      sum += ps;
      squares += pq;
    }
    const double m = sum / count;
    mean[c] = static_cast<float>(shift + m);
    var[c] = static_cast<float>(std::max(squares / count - m * m, 0.0));
  }
}
