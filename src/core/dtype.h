// Element types a tensor can hold. F64 exists for the CPU backend's gradient checks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sinklab {

enum class DType : uint8_t { F32, BF16, F64, I32 };

constexpr size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: return 4;
        case DType::BF16: return 2;
        case DType::F64: return 8;
        case DType::I32: return 4;
    }
    return 0;
}

constexpr std::string_view dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "f32";
        case DType::BF16: return "bf16";
        case DType::F64: return "f64";
        case DType::I32: return "i32";
    }
    return "?";
}

// Gradients, master weights and optimizer moments are never narrower than fp32.
constexpr DType wide_dtype(DType compute) { return compute == DType::F64 ? DType::F64 : DType::F32; }

// bf16 as raw bits on the host (device code uses __nv_bfloat16); round to nearest even.
struct bf16_bits {
    uint16_t bits;
};
inline uint16_t float_to_bf16_bits(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}
inline float bf16_bits_to_float(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}

}  // namespace sinklab
