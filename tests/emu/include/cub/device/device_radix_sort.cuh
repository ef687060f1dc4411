// Stands in for CUB's radix sort in tests/emu: SortPairs as a stable sort by key, which is what a radix sort is.
#pragma once
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <vector>

#include "cuda_runtime.h"

namespace cub {

struct DeviceRadixSort {
    // With temp == nullptr only sets temp_bytes, as CUB does. Keys are compared whole (begin_bit 0, end_bit all).
    template <typename K, typename V, typename N>
    static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* keys_in, K* keys_out, const V* values_in,
                                 V* values_out, N n, int begin_bit = 0, int end_bit = int(sizeof(K) * 8),
                                 cudaStream_t st = nullptr) {
        if (begin_bit != 0 || end_bit != int(sizeof(K) * 8)) return cudaErrorInvalidValue;
        if (!temp) {
            temp_bytes = 16;
            return cudaSuccess;
        }
        sinklab::emu::enqueue(st, [=] {
            std::vector<size_t> order(static_cast<size_t>(n));
            std::iota(order.begin(), order.end(), size_t(0));
            std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys_in[a] < keys_in[b]; });
            std::vector<K> keys(order.size());
            std::vector<V> values(order.size());
            for (size_t i = 0; i < order.size(); i++) keys[i] = keys_in[order[i]], values[i] = values_in[order[i]];
            std::copy(keys.begin(), keys.end(), keys_out);
            std::copy(values.begin(), values.end(), values_out);
        });
        return cudaSuccess;
    }
};

}  // namespace cub
