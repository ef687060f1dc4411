// sinklab train CONFIG [--set k=v]... [--resume] [--overwrite]
#include "cli/commands.h"
#include "cli/config_args.h"
#include "train/trainer.h"

namespace sinklab::cli {

void add_train(CLI::App& app) {
    auto* cmd = app.add_subcommand("train", "train a model from a YAML config (also under mpirun -np N)");
    auto args = std::make_shared<ConfigArgs>();
    auto opt = std::make_shared<TrainOptions>();
    add_config_args(*cmd, *args);
    cmd->add_flag("--resume", opt->resume, "continue the run from its newest checkpoint");
    cmd->add_flag("--overwrite", opt->overwrite, "replace an existing run folder of the same name");
    cmd->callback([args, opt] {
        const Config cfg = load_config(args->path, args->overrides);
        auto comm = make_communicator();
        Trainer trainer(cfg, *opt, *comm);
        trainer.run();
    });
}

}  // namespace sinklab::cli
