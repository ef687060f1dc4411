// The tiny end-to-end training runs that the training, checkpoint, fault and MPI tests share.
#pragma once
#include <fmt/format.h>

#include <string>
#include <vector>

#include "cli_util.h"
#include "metrics/runlog_reader.h"

namespace sinklab::test {

// `sinklab train` arguments for a model small enough for a few seconds of CPU training (d_model 64, 2 layers,
// 8 x 64 tokens per step) on the learnable synthetic stream, kept in `dir` with the run folder dir/name.
inline std::string small_run(const TempDir& dir, const std::string& name, int steps, const std::string& extra = "") {
    return fmt::format(
        "train {}/configs/tiny.yaml --set run.out_dir={} --set run.name={} --set run.threads=2 "
        "--set model.d_model=64 --set model.n_layer=2 --set model.n_head=4 --set model.d_ff=192 "
        "--set model.seq_len=64 --set train.micro_batch=8 --set train.max_steps={} --set train.warmup_steps=2 "
        "--set metrics.val_every=25 --set metrics.val_batches=2 --set metrics.flush_every=5 "
        "--set data.train={}/data/train_*.bin --set data.val={}/data/val_*.bin --set data.missing=synthetic {}",
        SINKLAB_SOURCE_DIR, dir.path(), name, steps, dir.path(), dir.path(), extra);
}

// True once the run's train.log has logged optimizer step `step` (train.log_every = 1).
inline bool logged_step(const TempDir& dir, const std::string& run, int step) {
    return read_file(dir / (run + "/train.log")).find(fmt::format("step {:>6}/", step)) != std::string::npos;
}

inline std::vector<double> column(const std::string& h5, const std::string& group, const std::string& col) {
    return RunLogReader(h5).read(group, col).data;
}

}  // namespace sinklab::test
