// Each subcommand lives in its own file and registers itself on the app with one of these.
#pragma once
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>

namespace sinklab::cli {

void add_train(CLI::App& app);
void add_info(CLI::App& app);
void add_bench(CLI::App& app);
void add_prepare(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_sweep(CLI::App& app);
void add_compare(CLI::App& app);
void add_export(CLI::App& app);
void add_eval(CLI::App& app);

// Refuses, in one line naming `option`, an output file that cannot be written (its folder missing or read-only);
// an existing file is left as it is.
void check_writable(const std::string& option, const std::string& path);

// Whether `path` (an output a command writes, which need not exist yet) is the folder `folder` or lies below it,
// links resolved.
bool lies_in(const std::string& path, const std::string& folder);

// Refuses, naming `option`, an output that goes into `folder` when it, or a folder above it, is a checkpoint folder
// (checkpoints/step_NNNNNNNN holding state.json: pruning deletes it) or the folder of a run other than `own_run`
// (metrics.h5 beside config.yaml or checkpoints/: the output would pass for that run's).
void refuse_output_in_other_runs(const std::string& option, const std::string& out, const std::string& folder,
                                 const std::string& own_run);

// A whole number >= lo of an int option, for ->check(): CLI11's PositiveNumber and NonNegativeNumber name their
// upper bound, DBL_MAX in all its 309 digits, in every message, and a number beyond int fails its conversion with
// "Could not convert".
inline CLI::Validator at_least(int64_t lo) {
    return CLI::Validator(
        [lo](std::string& text) {
            int64_t value = 0;
            const char* end = text.data() + text.size();
            const auto [stop, ec] = std::from_chars(text.data(), end, value);
            constexpr int64_t hi = std::numeric_limits<int>::max();
            if (ec == std::errc::result_out_of_range || (ec == std::errc() && stop == end && value > hi))
                return fmt::format("{} is too large; it must be at most {}", text, hi);
            if (ec != std::errc() || stop != end) return fmt::format("'{}' is not a whole number", text);
            return value < lo ? fmt::format("{} is too small; it must be at least {}", text, lo) : std::string();
        },
        fmt::format("INT >= {}", lo));
}

}  // namespace sinklab::cli
