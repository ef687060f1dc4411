// Stands in for CUB's radix sort in tests/emu: SortPairs as a stable sort by key, which is what a radix sort is.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <numeric>
#include <vector>

#include "cuda_runtime.h"

namespace cub {

struct DeviceRadixSort {
    // With temp == nullptr only sets temp_bytes, as CUB does: room for a copy of the keys and the values (CUB's
    // double buffers) and 256 bytes more. The sort writes every byte of it after its outputs, as CUB may, so that
    // temporary storage that is short or overlaps the outputs shows. Keys are compared whole (begin_bit 0, end_bit
    // all).
    template <typename K, typename V, typename N>
    static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* keys_in, K* keys_out, const V* values_in,
                                 V* values_out, N n, int begin_bit = 0, int end_bit = int(sizeof(K) * 8),
                                 cudaStream_t st = nullptr) {
        if (begin_bit != 0 || end_bit != int(sizeof(K) * 8)) return cudaErrorInvalidValue;
        const size_t count = static_cast<size_t>(n), need = count * (sizeof(K) + sizeof(V)) + 256;
        if (!temp) {
            temp_bytes = need;
            return cudaSuccess;
        }
        sinklab::emu::enqueue(st, [=] {
            std::vector<size_t> order(count);
            std::iota(order.begin(), order.end(), size_t(0));
            std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys_in[a] < keys_in[b]; });
            std::vector<K> keys(count);
            std::vector<V> values(count);
            for (size_t i = 0; i < count; i++) keys[i] = keys_in[order[i]], values[i] = values_in[order[i]];
            std::copy(keys.begin(), keys.end(), keys_out);
            std::copy(values.begin(), values.end(), values_out);
            std::memset(temp, 0x5a, need);
        });
        return cudaSuccess;
    }
};

}  // namespace cub
