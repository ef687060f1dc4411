// Validation with the origin of every value at hand, so that messages name the file and line it came from.
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace sinklab::config {

struct Origins {
    std::map<std::string, std::string, std::less<>> by_key;  // "model.d_model" -> "configs/tiny.yaml:12"
    std::string fallback;                                    // for keys not in by_key ("default")

    std::string_view of(std::string_view path) const {
        auto it = by_key.find(path);
        return it == by_key.end() ? std::string_view(fallback) : std::string_view(it->second);
    }
};

void validate_config(const Config& c, const Origins& origins, ConfigUse use = ConfigUse::train);

// Settings of a valid config that change nothing it computes (a sigmoid bias without sigmoid attention, an
// amplification by 1, ...): one note each, for train.log and eval, so that a forgotten variant or intervention
// key shows instead of running silently as the plain model.
std::vector<std::string> ineffective_settings(const Config& c);

// The notes a training run logs: ineffective_settings, and settings that let a position see later tokens (the
// centered amplification's mean over the whole sequence), which an eval of a trained model may mean to use.
std::vector<std::string> training_notes(const Config& c);

}  // namespace sinklab::config
