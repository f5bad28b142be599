// Static, equal shares of a list of tensors' values per OpenMP thread, whatever the tensors' sizes (one [1280,
// 18385] head holds most of a rec model's values): the loop-level ops over a whole model (ema.cc, adam.cc) use it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <omp.h>

// start: prefix sums of the tensors' sizes (start[0] = 0, start.back() = total). fn(i, lo, hi) handles values
// [lo, hi) of tensor i; each thread gets one contiguous share of the concatenated values, no scheduler.
template <typename Fn>
void ForEachFlatShare(const std::vector<int64_t>& start, int threads, Fn fn) {
  const int64_t total = start.back();
#pragma omp parallel num_threads(std::max(1, threads))
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t lo = total * t / nt, hi = total * (t + 1) / nt;
    size_t i = std::upper_bound(start.begin(), start.end(), lo) - start.begin() - 1;
    for (int64_t g = lo; g < hi; ++i) {
      const int64_t end = std::min(hi, start[i + 1]);
      fn(i, g - start[i], end - start[i]);
      g = end;
    }
  }
}
