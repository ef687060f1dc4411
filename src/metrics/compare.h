// `sinklab compare`: what several runs' metrics.h5 files say side by side. Runs group by variant (the run
// folder name without its -s<seed> suffix); each number is the mean ± sd over a group's seeds. Works on
// finished runs, on runs still writing (through RunLogReader's SWMR snapshot) and on runs cut short.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace sinklab {

// One run's curves, its last /sink row and its last /heavy row's effective rank.
struct RunCurves {
    std::string dir;
    std::string name;                         // the run folder's name
    std::string variant;                      // name without -s<seed>
    int64_t max_steps = 0;                    // train.max_steps of the run's config (0 when the file does not say)
    std::vector<int> positions{0};            // key positions of /sink/attn_mass's columns (sink_positions)
    InterventionConfig intervention;          // its isolated and amplified positions (the rest is not read)
    int64_t seq_len = 0;                      // model.seq_len (0 when the file does not say)
    std::vector<double> step, tokens, loss;   // /train, one entry per logged step
    std::vector<double> val_loss;             // /val
    int64_t sink_step = -1;                   // step of the last /sink row; -1: no row yet
    std::map<int, std::vector<double>> mass;  // tracked key position -> [L] attention mass on it, mean over heads
    std::vector<double> sink_rate;            // [L]
    std::vector<double> dominance;            // [L]
    std::vector<double> var_ratio;            // [L] wo_input_std at position 0 / its mean over positions 1..Tp-1
    std::vector<double> att_ratio;            // [L] the same of attn_out_std (before HeadNorm); empty: not logged
    std::vector<double> effective_rank;       // [L] at the last /heavy row; empty before the first
    std::string train_checksum, val_checksum;  // of the data's tokens (DataLoader::fingerprint); "" when not logged
    std::string run_id;                       // metrics.h5's run_id ("" in files from before it)
    std::optional<Config> config;             // the run folder's config.yaml, when it has a loadable one
    std::string config_error;                 // why its config.yaml is not there to check ("" when it loaded)
};

// Reads a run folder's metrics.h5.
RunCurves read_run(const std::string& dir);

// The run folders the arguments name: a run folder (it holds metrics.h5), its metrics.h5, or a folder of runs
// (a suite's: its run folders in the order of its sweep.yaml, else by variant name and seed). Folders of runs
// that have not written metrics.h5 yet are left out with a note on `notes`.
std::vector<std::string> find_runs(const std::vector<std::string>& args, std::vector<std::string>& notes);

// Trailing moving average: out[i] = mean of the finite values of v[max(0, i-n+1) .. i]; NaN where v[i] is not finite.
std::vector<double> trailing_mean(const std::vector<double>& v, int n);
// Tokens at which `curve` first falls to `target`, linearly interpolated between the two logged points around
// the crossing (tokens[0] when it starts at or below it); NaN when it never does.
double tokens_to_reach(const std::vector<double>& tokens, const std::vector<double>& curve, double target);

// Mean and sample standard deviation (n - 1) of the finite values among `of`; sd is NaN for fewer than 2.
struct Stat {
    int n = 0;
    int of = 0;
    double mean = NAN;
    double sd = NAN;
};
Stat stat_of(const std::vector<double>& values);

struct GroupRow {
    std::string name;
    std::vector<std::string> runs;
    int64_t step_min = 0, step_max = 0, max_steps = 0;  // last /train step over the group's runs; the target
    Stat train_loss;                       // final smoothed train loss: mean of the last `smooth` logged losses
    Stat val_loss;                         // last validation loss
    Stat tokens_to_target;                 // tokens until the smoothed train loss reaches the baseline's final one
    Stat speedup;                          // baseline tokens / tokens_to_target
    Stat sink_rate, dominance, var_ratio, att_ratio;  // last /sink row, mean over layers
    Stat effective_rank;                   // last /heavy row, mean over layers
    std::map<int, Stat> mass;              // tracked position -> attention mass on it, mean over layers
    std::map<int, std::vector<Stat>> mass_by_layer;  // tracked position -> [L]
    std::vector<Stat> var_ratio_by_layer, att_ratio_by_layer;  // [L]; empty when no run has a value
};

struct Comparison {
    std::string baseline;
    int smooth = 0;
    int baseline_runs = 0;
    double target_loss = NAN;      // the baseline's final smoothed train loss, mean over its runs
    double baseline_tokens = NAN;  // the baseline runs' tokens to the target, mean over those that reach it
    std::vector<int> positions;    // every key position some run tracks, ascending
    std::vector<GroupRow> groups;  // in order of first appearance
    std::vector<std::string> notes;  // runs left out of the seeds' config check, and why
};

// `baseline` empty: the first group. Runs of the same name from different folders (two suites with the same
// variants) make every group name "<folder>/<variant>". Runs of one group whose configs differ in more than
// their seed, place and bookkeeping (kSeedsMayDiffer in compare.cpp) are refused: they are no seeds of one variant.
// A run of a group of several whose config.yaml does not load is left out of that check, with a note.
Comparison compare_runs(const std::vector<RunCurves>& runs, const std::string& baseline, int smooth);

}  // namespace sinklab
