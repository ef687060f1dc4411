// "Did you mean ...?" for unknown config keys.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace sinklab::config {

// Levenshtein distance (insert, delete, substitute; each costs 1).
int edit_distance(std::string_view a, std::string_view b);
// The schema keys closest to `unknown`, compared over full paths and over last components (so that
// "training.lr" and "d_model" find train.lr and model.d_model); empty when nothing is close.
std::vector<std::string> suggest_keys(std::string_view unknown);

}  // namespace sinklab::config
