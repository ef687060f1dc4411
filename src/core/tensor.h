// A non-owning view of backend memory: pointer, element type and shape (row-major, contiguous).
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include "core/check.h"
#include "core/dtype.h"

namespace sinklab {

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<bf16_bits>() { return DType::BF16; }

// "[2, 3, 4]": shapes in messages, the same for tensors, file headers and logged columns.
inline std::string shape_str(std::span<const int64_t> shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

struct Tensor {
    static constexpr int kMaxDims = 5;

    void* data = nullptr;
    DType dtype = DType::F32;
    int ndim = 0;
    std::array<int64_t, kMaxDims> shape{};

    Tensor() = default;
    Tensor(void* d, DType t, std::initializer_list<int64_t> dims) : data(d), dtype(t) {
        SL_ASSERT(dims.size() <= kMaxDims, "tensor of rank {}", dims.size());
        for (int64_t s : dims) shape[ndim++] = s;
    }

    bool empty() const { return data == nullptr; }
    int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
    int64_t numel() const {
        int64_t n = 1;
        for (int i = 0; i < ndim; i++) n *= shape[i];
        return n;
    }
    size_t bytes() const { return size_t(numel()) * dtype_size(dtype); }

    // Same memory, another shape with the same number of elements.
    Tensor view(std::initializer_list<int64_t> dims) const {
        Tensor t(data, dtype, dims);
        SL_ASSERT(t.numel() == numel(), "view {} of a tensor {}", t.shape_str(), shape_str());
        return t;
    }
    // Rows [r0, r0+n) of the outermost dimension.
    Tensor rows(int64_t r0, int64_t n) const {
        SL_ASSERT(ndim >= 1 && r0 >= 0 && r0 + n <= shape[0], "rows {}+{} of {}", r0, n, shape_str());
        Tensor t = *this;
        t.shape[0] = n;
        t.data = static_cast<char*>(data) + size_t(r0) * (bytes() / size_t(shape[0] ? shape[0] : 1));
        return t;
    }

    template <typename T> T* ptr() const {
        SL_ASSERT(dtype == dtype_of<T>(), "tensor holds {}, asked for {}", dtype_name(dtype),
                  dtype_name(dtype_of<T>()));
        return static_cast<T*>(data);
    }

    std::string shape_str() const { return ::sinklab::shape_str({shape.data(), size_t(ndim)}); }
};

}  // namespace sinklab
