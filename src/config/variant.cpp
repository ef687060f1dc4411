#include "config/variant.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "config/config.h"
#include "core/check.h"

namespace sinklab::config {
namespace {

constexpr const char* kGrammar =
    "write 'standard' or a '+'-joined combination of headnorm, gated and at most one of sink_logit, off_by_one, "
    "sigmoid (e.g. headnorm+gated)";

VariantParts invalid(std::string why) {
    VariantParts parts;
    parts.error = fmt::format("{}; {}", why, kGrammar);
    return parts;
}

// "'HeadNorm' is not a part", with the part it was likely meant for when only its case differs.
std::string not_a_part(std::string_view part) {
    std::string lower(part);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    for (const char* known : {"standard", "headnorm", "gated", "sink_logit", "off_by_one", "sigmoid"})
        if (lower == known) return fmt::format("'{}' is not a part (parts are lower case: '{}')", part, known);
    return fmt::format("'{}' is not a part", part);
}

}  // namespace

VariantParts parse_variant(std::string_view variant) {
    if (variant == "standard") return {};
    VariantParts parts;
    bool score_named = false;
    size_t begin = 0;
    while (begin <= variant.size()) {
        size_t end = std::min(variant.find('+', begin), variant.size());
        std::string_view part = variant.substr(begin, end - begin);
        begin = end + 1;
        bool seen = false;
        if (part == "headnorm") {
            seen = parts.headnorm;
            parts.headnorm = true;
        } else if (part == "gated") {
            seen = parts.gated;
            parts.gated = true;
        } else if (part == "sink_logit" || part == "off_by_one" || part == "sigmoid") {
            if (score_named && parts.score != part)
                return invalid(fmt::format("'{}' and '{}' are both score kinds", parts.score, part));
            seen = score_named;
            score_named = true;
            parts.score = part;
        } else if (part.empty()) {
            return invalid("it has an empty part");
        } else if (part == "standard") {
            return invalid("'standard' cannot be combined");
        } else {
            return invalid(not_a_part(part));
        }
        if (seen) return invalid(fmt::format("'{}' appears twice", part));
    }
    return parts;
}

}  // namespace sinklab::config

namespace sinklab {
namespace {

config::VariantParts parts_of(const AttentionConfig& a) {
    config::VariantParts parts = config::parse_variant(a.variant);
    SL_REQUIRE(parts.error.empty(), "attention.variant: '{}': {}", a.variant, parts.error);
    return parts;
}

}  // namespace

bool AttentionConfig::headnorm_on() const { return parts_of(*this).headnorm; }
bool AttentionConfig::gated_on() const { return parts_of(*this).gated; }
std::string AttentionConfig::score() const { return parts_of(*this).score; }

}  // namespace sinklab
