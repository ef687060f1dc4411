// Counter-based random numbers: the value drawn depends only on (seed, stream, index), never on the order
// in which things are initialized, the backend, or the number of threads.
#pragma once
#include <cmath>
#include <cstdint>

namespace sinklab {

// The SplitMix64 output function: a bijective 64-bit mix, also a good hash finalizer.
inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
inline uint64_t splitmix64(uint64_t x) { return mix64(x + 0x9e3779b97f4a7c15ull); }

// The SplitMix64 generator: a stream fixed by its seed on every platform (the std:: distributions are not),
// so data order and synthetic data are the same everywhere.
struct SplitMix64 {
    uint64_t state;
    explicit SplitMix64(uint64_t seed) : state(seed) {}
    uint64_t next() { return mix64(state += 0x9e3779b97f4a7c15ull); }
    // Uniform in [0, n), n > 0, without modulo bias.
    uint64_t below(uint64_t n) {
        const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        uint64_t x;
        do x = next();
        while (x >= limit);
        return x % n;
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

// Stream `stream` of generator `seed`; hash a name into `stream` to give each tensor its own.
class Rng {
public:
    Rng(uint64_t seed, uint64_t stream) : key_(splitmix64(seed ^ splitmix64(stream + 0x632be59bd9b4e019ull))) {}

    uint64_t next_u64() { return splitmix64(key_ + 0x9e3779b97f4a7c15ull * ++counter_); }
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
    // Uniform integer in [0, n), biased by at most n / 2^53 (nothing for counts of windows or ids); unlike
    // SplitMix64::below it draws exactly one number, which keeps the data orders of existing runs.
    uint64_t below(uint64_t n) { return uint64_t(uniform() * double(n)); }
    // Standard normal (Box-Muller; one value per call keeps the stream position simple).
    double normal() {
        double u1 = uniform(), u2 = uniform();
        if (u1 < 1e-300) u1 = 1e-300;
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }

private:
    uint64_t key_;
    uint64_t counter_ = 0;
};

// FNV-1a, for turning names into stream ids and configs into hashes.
inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
    auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

}  // namespace sinklab
