// A test hook: faults injected on purpose so that end-to-end tests drive the real failure paths of a run.
// Read from the environment variable SINKLAB_FAULT_INJECT (unset in normal runs: then nothing happens), a
// comma-separated list of KIND@STEP or KIND@STEP:RANK (STEP: the 1-based optimizer step; RANK: only that
// rank, else every rank) and slow=SECONDS (a pause in every step, so that a test can catch a run mid-way):
//   throw   the rank throws an error at the start of the step
//   kill    the rank kills itself with SIGKILL at the start of the step
//   signal  the rank sends itself SIGTERM at the start of the step
//   stop    the rank stops itself with SIGSTOP at the start of the step, until a test continues it (SIGCONT)
//   hang    the rank's training thread blocks at the start of the step for good, as in a stalled file system
//   spike   the step's targets become random tokens: a genuine loss spike
//   nan     the rank's gradients become NaN before the all-reduce
//   desync  the rank's weights are nudged after the update, so that the ranks disagree
//   setup   the rank throws an error at the end of setup, once the run folder holds the new run's files and
//           before step 1 (STEP is 0: setup@0), where an --overwrite start still puts the old run back
// `sinklab eval` runs the hooks of step 1 once, with the weights loaded and before the evaluation; export_hf_llama
// (`sinklab export`) likewise, with the checkpoint read and before it makes its folder.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace sinklab {

class FaultInjection {
public:
    // Parses SINKLAB_FAULT_INJECT for this rank; a malformed value is an error.
    static FaultInjection from_env(int rank);

    void before_step(int64_t step) const;                                    // throw, kill, signal, stop, hang, slow
    void on_targets(int64_t step, int32_t* targets, size_t n, int vocab_size) const;  // spike
    void after_backward(int64_t step, Model& model) const;                           // nan
    void after_update(int64_t step, Model& model) const;                             // desync
    void after_setup() const;                                                         // setup

private:
    struct Fault {
        std::string kind;
        int64_t step = 0;
    };
    bool at(const char* kind, int64_t step) const;
    std::vector<Fault> faults_;  // those of this rank
    double slow_s_ = 0;
};

}  // namespace sinklab
