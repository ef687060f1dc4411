#include "config/suggest.h"

#include <algorithm>
#include <numeric>

#include "config/schema.h"

namespace sinklab::config {
namespace {

std::string_view last_component(std::string_view path) {
    size_t dot = path.rfind('.');
    return dot == std::string_view::npos ? path : path.substr(dot + 1);
}

}  // namespace

int edit_distance(std::string_view a, std::string_view b) {
    std::vector<int> row(b.size() + 1);
    std::iota(row.begin(), row.end(), 0);
    for (size_t i = 1; i <= a.size(); i++) {
        int diagonal = row[0];
        row[0] = int(i);
        for (size_t j = 1; j <= b.size(); j++) {
            int above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::vector<std::string> suggest_keys(std::string_view unknown) {
    constexpr size_t kMaxSuggestions = 3;
    std::string_view unknown_last = last_component(unknown);
    // A match on the last component alone costs 1 more than a full-path match of the same distance, so a
    // typo inside the right section wins over the same name in another section. A cut-short name
    // ("warmup" for warmup_steps) counts as one edit.
    auto score = [&](std::string_view key) {
        std::string_view last = last_component(key);
        int last_distance = edit_distance(unknown_last, last);
        if (unknown_last.size() >= 3 && last.starts_with(unknown_last)) last_distance = std::min(last_distance, 1);
        return std::min(edit_distance(unknown, key), last_distance + 1);
    };
    // Up to a third of the name may be wrong (at least 2 edits, so short names still find their typos).
    const int limit = std::max<int>(2, int(unknown_last.size() / 3)) + 1;
    int best = limit + 1;
    std::vector<std::string> found;
    for (const Field& f : schema()) {
        int s = score(f.path);
        if (s > limit || s > best) continue;
        if (s < best) found.clear();
        best = s;
        if (found.size() < kMaxSuggestions) found.emplace_back(f.path);
    }
    return found;
}

}  // namespace sinklab::config
