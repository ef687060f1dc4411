#include "core/checksum.h"

#include <cstring>

#include <fmt/format.h>

namespace sinklab {

namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full, kP3 = 0x165667B19E3779F9ull;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t mix(uint64_t lane, uint64_t word) { return rotl(lane + word * kP2, 31) * kP1; }
inline uint64_t load64(const unsigned char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);  // little-endian hosts only (x86-64, aarch64): the value then matches the file bytes
    return w;
}

}  // namespace

Checksum64::Checksum64() : lanes_{kP1 + kP2, kP2, 0, 0 - kP1} {}

void Checksum64::stripe(const unsigned char* p) {
    for (int i = 0; i < 4; i++) lanes_[i] = mix(lanes_[i], load64(p + 8 * i));
}

void Checksum64::update(const void* data, size_t n) {
    if (n == 0) return;  // data may be null then (an empty tensor), which memcpy may not be given
    auto* p = static_cast<const unsigned char*>(data);
    total_ += n;
    if (buf_len_ > 0) {
        const size_t take = std::min(n, buf_.size() - buf_len_);
        std::memcpy(buf_.data() + buf_len_, p, take);
        buf_len_ += take, p += take, n -= take;
        if (buf_len_ < buf_.size()) return;
        stripe(buf_.data());
        buf_len_ = 0;
    }
    for (; n >= 32; p += 32, n -= 32) stripe(p);
    std::memcpy(buf_.data(), p, n);
    buf_len_ = n;
}

uint64_t Checksum64::digest() const {
    uint64_t h = rotl(lanes_[0], 1) + rotl(lanes_[1], 7) + rotl(lanes_[2], 12) + rotl(lanes_[3], 18);
    for (uint64_t lane : lanes_) h = (h ^ mix(0, lane)) * kP1 + kP3;
    h += total_;
    for (size_t i = 0; i < buf_len_; i++) h = rotl(h ^ (buf_[i] * kP3), 11) * kP1;  // the tail, byte by byte
    h ^= h >> 33;
    h *= kP2;
    h ^= h >> 29;
    h *= kP3;
    return h ^ (h >> 32);
}

std::string Checksum64::hex() const { return fmt::format("{:016x}", digest()); }

uint64_t checksum64(const void* data, size_t n) {
    Checksum64 c;
    c.update(data, n);
    return c.digest();
}

}  // namespace sinklab
