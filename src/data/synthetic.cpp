#include "data/synthetic.h"

#include <array>
#include <cmath>
#include <string_view>

#include "core/rng.h"

namespace sinklab {

namespace {

constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789 .,\n";
constexpr size_t kSymbols = kAlphabet.size();
constexpr std::array<double, 3> kSuccessorProb = {0.6, 0.3, 0.1};
constexpr double kStopProb = 1e-3;
constexpr uint64_t kSourceSeed = 0x51C1AB5EEDull;  // fixes the source: every synthetic dataset shares it

using Successors = std::array<std::array<uint8_t, 3>, kSymbols * kSymbols>;  // [context a*40+b] -> 3 symbols

const Successors& source() {
    static const Successors table = [] {
        Successors t;
        SplitMix64 rng(kSourceSeed);
        std::array<uint8_t, kSymbols> perm;
        for (auto& successors : t) {
            for (size_t i = 0; i < kSymbols; ++i) perm[i] = static_cast<uint8_t>(i);
            for (size_t i = 0; i < successors.size(); ++i) {  // 3 distinct symbols: a partial Fisher-Yates
                std::swap(perm[i], perm[i + rng.below(kSymbols - i)]);
                successors[i] = perm[i];
            }
        }
        return t;
    }();
    return table;
}

}  // namespace

std::vector<std::string> synthetic_documents(uint64_t stream_seed, size_t min_chars) {
    const Successors& next = source();
    SplitMix64 rng(mix64(stream_seed));
    std::vector<std::string> docs;
    size_t total = 0;
    while (total < min_chars) {
        std::string doc;
        size_t a = kAlphabet.find('.'), b = kAlphabet.find(' ');  // every document starts as after a sentence
        do {
            const double u = rng.uniform();
            const size_t choice = u < kSuccessorProb[0] ? 0 : u < kSuccessorProb[0] + kSuccessorProb[1] ? 1 : 2;
            const size_t c = next[a * kSymbols + b][choice];
            doc += kAlphabet[c];
            a = b, b = c;
        } while (rng.uniform() >= kStopProb);
        total += doc.size();
        docs.push_back(std::move(doc));
    }
    return docs;
}

double synthetic_entropy_per_token() {
    double h = 0;  // nats per symbol
    for (double p : kSuccessorProb) h -= p * std::log(p);
    // A document of L symbols: L symbol choices, L-1 "go on" decisions, one EOT; L is geometric with mean 1/q.
    const double q = kStopProb, L = 1 / q;
    return (L * h - (L - 1) * std::log1p(-q) - std::log(q)) / (L + 1);
}

}  // namespace sinklab
