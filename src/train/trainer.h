// The training loop: data -> micro-steps (forward, backward) -> gradient all-reduce -> clip -> AdamW,
// with validation, the HDF5 run log, console/train.log lines and a progress display.
#pragma once
#include <memory>
#include <string>

#include "config/config.h"
#include "dist/comm.h"

namespace sinklab {

// How a global optimizer step splits into micro-steps on each rank.
struct StepGeometry {
    int micro_batch = 0;  // B: sequences per rank per micro-step
    int seq_len = 0;      // T
    int world = 1;
    int accum = 1;        // micro-steps per optimizer step on each rank
    int64_t tokens_per_step = 0;
};
// Fails with a clear message when train.tokens_per_step does not split evenly over the ranks.
StepGeometry step_geometry(const Config& cfg, int world);

// How often a run of `last_step` optimizer steps reads data.train of `windows` training windows
// (DataLoader::training_windows): an epoch is the global batches of world x B windows that fit, and a step reads accum
// of them. A resumed run goes on after `done` steps from `epoch` and the `cursor` windows handed out of it (its
// loader's position, which another rank count may have reached).
struct DataPasses {
    int64_t batches_per_epoch = 0;
    double epochs = 0;              // all batches read by the last step / batches_per_epoch
    int64_t first_repeat_step = 0;  // the first step from done + 1 on that reads tokens read before; 0: none does
};
DataPasses data_passes(uint64_t windows, const StepGeometry& geo, int64_t last_step, int64_t done = 0,
                       uint64_t epoch = 0, uint64_t cursor = 0);

struct TrainOptions {
    bool resume = false;     // continue from the newest checkpoint of the run folder
    bool overwrite = false;  // replace an existing run folder
};

// Where a run keeps its files.
std::string run_dir(const Config& cfg);

class Trainer {
public:
    Trainer(const Config& cfg, const TrainOptions& opt, Communicator& comm);
    ~Trainer();
    void run();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sinklab
