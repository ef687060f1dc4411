// The CONFIG argument and --set overrides that several subcommands share.
#pragma once
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace sinklab::cli {

struct ConfigArgs {
    std::string path;
    std::vector<std::string> overrides;
};

inline void add_config_args(CLI::App& cmd, ConfigArgs& args) {
    cmd.add_option("config", args.path, "YAML config file (see configs/base.yaml)")->required();
    // One value per --set, so that CONFIG may also come after them.
    cmd.add_option("--set", args.overrides, "override a key: --set train.lr=3e-4 (repeatable)")
        ->allow_extra_args(false);
}

}  // namespace sinklab::cli
