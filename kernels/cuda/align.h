// Scratch alignment, in a header the host compiler reads too (attention_scratch.h sizes scratch for estimates).
#pragma once
#include <cstddef>

namespace sinklab::cuda {

// Scratch regions start on 256-byte boundaries, as cudaMalloc does: every vector access stays aligned.
inline size_t align256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace sinklab::cuda
