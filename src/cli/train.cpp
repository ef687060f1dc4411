// sinklab train CONFIG [--set k=v]... [--resume] [--overwrite]
#include <cstdio>

#include "cli/commands.h"
#include "cli/config_args.h"
#include "train/stop_signal.h"
#include "train/trainer.h"

namespace sinklab::cli {

void add_train(CLI::App& app) {
    auto* cmd = app.add_subcommand("train", "train a model from a YAML config (also under mpirun -np N)");
    auto args = std::make_shared<ConfigArgs>();
    auto opt = std::make_shared<TrainOptions>();
    add_config_args(*cmd, *args);
    cmd->add_flag("--resume", opt->resume,
                  "continue the run from its newest checkpoint (from step 0 when it has none, so that a requeued "
                  "job can always pass it)");
    cmd->add_flag("--overwrite", opt->overwrite, "replace an existing run folder of the same name");
    cmd->callback([args, opt] {
        SL_REQUIRE(!(opt->resume && opt->overwrite), "--resume continues a run and --overwrite replaces it; pass one");
        // Before MPI starts and the config loads: a stop signal then (mpirun's, or Slurm's near the time limit) stops
        // the run after its first step instead of killing the ranks, which a requeue would not follow.
        const StopSignals stop_from_the_start;
        // MPI first: a config error then ends every rank with one message (see exit_with_error).
        Communicator& comm = process_communicator();
        const Config cfg = load_config(args->path, args->overrides);
        Trainer trainer(cfg, *opt, comm);
        trainer.run();
        // The run's record is train.log; its copy on the console may go (a terminal closed, stdout closed) without
        // failing a finished run at exit.
        std::fflush(stdout);
        std::clearerr(stdout);
    });
}

}  // namespace sinklab::cli
