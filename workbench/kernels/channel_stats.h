// Per-channel batch statistics, shared by the BatchNorm, channel-affine and depthwise-branches kernels.
// One pass, shifted by the channel's first value (no cancellation when |mean| >> std), float per plane and double
// across planes; the variance is the biased one, as Paddle's BatchNorm uses. One channel per loop iteration, each in
// a fixed order: results are deterministic whatever the thread count.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

// Batch statistics of one channel accumulated plane by plane: sums shifted by the channel's first value (no
// cancellation when |mean| >> std), float within a plane, double across planes; the variance is the biased one.
struct ShiftedMoments {
  bool started = false;
  float shift = 0.0f;
  double sum = 0.0, squares = 0.0;

  void Add(const float* plane, int64_t size) {
    if (!started) shift = plane[0], started = true;
    const float s0 = shift;
    float ps = 0.0f, pq = 0.0f;
#pragma omp simd reduction(+ : ps, pq)
    for (int64_t i = 0; i < size; ++i) {
      const float d = plane[i] - s0;
      ps += d;
      pq += d * d;
    }
    sum += ps;
    squares += pq;
  }

  void Finish(double count, float* mean, float* var) const {
    const double m = sum / count;
    *mean = static_cast<float>(shift + m);
    *var = static_cast<float>(std::max(squares / count - m * m, 0.0));
  }
};

inline void ChannelMeanVar(const float* x, int64_t n, int64_t k, int64_t hw, float* mean, float* var,
                           int threads) {
  const double count = static_cast<double>(n * hw);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < k; ++c) {
    ShiftedMoments moments;
    for (int64_t b = 0; b < n; ++b) moments.Add(x + (b * k + c) * hw, hw);
    moments.Finish(count, mean + c, var + c);
  }
}
