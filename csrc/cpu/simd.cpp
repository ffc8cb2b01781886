// Which instruction set simd_dispatch() runs the CPU kernels with.
#include "simd.h"

#include <atomic>

namespace mlpbench::simd {
namespace {

Level detect() {
#ifdef MLPB_SIMD_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("bmi2")) {
    return Level::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2")) {
    return Level::Avx2;
  }
#endif
  return Level::Baseline;
}

std::atomic<int> chosen{-1};

}  // namespace

Level best_level() {
  static const Level best = detect();
  return best;
}

Level level() {
  const int l = chosen.load(std::memory_order_relaxed);
  return l < 0 ? best_level() : static_cast<Level>(l);
}

void set_level(Level l) {
  const Level best = best_level();
  chosen.store(static_cast<int>(static_cast<int>(l) < static_cast<int>(best) ? l : best));
}

}  // namespace mlpbench::simd
