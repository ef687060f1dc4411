// The grammar of attention.variant: "standard", or a '+'-joined combination of headnorm, gated and at
// most one score kind (sink_logit | off_by_one | sigmoid), each part at most once, in any order.
#pragma once
#include <string>
#include <string_view>

namespace sinklab::config {

struct VariantParts {
    bool headnorm = false;
    bool gated = false;
    std::string score = "softmax";  // softmax | sink_logit | off_by_one | sigmoid
    std::string error;              // why the text is not a variant ("" when it is); says what to write
};

VariantParts parse_variant(std::string_view variant);

}  // namespace sinklab::config
