// Evaluation on held-out data: validation loss and every sink metric averaged over many batches, plus the
// dimension-wise variance of the W_O input over sequences, written to eval.h5 and printed per layer.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "data/dataloader.h"
#include "metrics/sink_metrics.h"

namespace sinklab {

struct EvalResult {
    int64_t batches = 0, sequences = 0;
    double loss = 0;
    SinkValues sink;    // means over batches (ffn_top_channel: the most frequent channel)
    HeavyValues heavy;  // means over batches
    // [L, Tp]: for each position, the std over sequences of each W_O-input channel, averaged over channels
    // (the paper's dimension-wise variance discrepancy).
    std::vector<double> wo_dimwise_std;
    std::vector<double> sink_rate;  // [L], from the mean attention mass
    double sink_percent = 0;        // Gu et al.'s Sink_1^eps: share of (layer, head) pairs, in percent
};

// The micro-batches of B sequences to average over, all ranks together: `wanted`, but at most the distinct batches of
// `loader`'s data, so that no window counts twice. When it caps, `notice` is one line saying so (`what` names the
// caller and `wanted` its setting), else "".
struct BatchCount {
    int batches = 0;
    std::string notice;
};
BatchCount distinct_batches(const DataLoader& loader, int wanted, int B, const std::string& what);

// Runs the first `wanted_batches` micro-batches of `loader` through the model of `sink`, the ranks of `comm` sharing
// them (no gradients, the model's own interventions applied; at most the distinct batches of its data, which rank 0
// then says on stderr), and averages every metric over them: the same windows and numbers on any number of ranks.
// batch_done(n) is called as this rank's n-th batch ends, for each but the last, for a hang watchdog; the last one
// goes on into the sums over the ranks, where a rank that stopped holds the others, and whatever the caller does next.
EvalResult evaluate(SinkMetrics& sink, DataLoader& loader, int wanted_batches, Communicator& comm,
                    const std::function<void(int)>& batch_done);

// eval.h5: one row (step = the checkpoint's step) of every metric, with the attributes given.
void write_eval_file(const std::string& path, const EvalResult& r, const SinkMetrics& sink, int64_t step,
                     const std::vector<std::pair<std::string, std::string>>& attrs);
// Whether `path` is such a file (written by write_eval_file, under any name): an HDF5 run log whose only group is
// /eval. False for anything else, including files that are no HDF5.
bool is_eval_file(const std::string& path);

// A table with one line per layer, for the terminal.
std::string format_eval_table(const EvalResult& r, const SinkMetrics& sink);

}  // namespace sinklab
