// A fast 64-bit checksum for large buffers (checkpoint files, cross-rank parameter checks): four independent
// multiply-rotate lanes over 32-byte stripes, in the style of xxHash64, at several GB/s. It detects corruption
// and divergence; it is not a cryptographic hash. The value depends only on the bytes, never on how they were
// split into update() calls.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sinklab {

class Checksum64 {
public:
    Checksum64();
    void update(const void* data, size_t n);
    uint64_t digest() const;  // of everything so far; more updates may follow
    std::string hex() const;  // digest() as 16 lower-case hex digits

private:
    void stripe(const unsigned char* p);
    std::array<uint64_t, 4> lanes_;
    std::array<unsigned char, 32> buf_{};
    size_t buf_len_ = 0;
    uint64_t total_ = 0;
};

uint64_t checksum64(const void* data, size_t n);

}  // namespace sinklab
