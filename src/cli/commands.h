// Each subcommand lives in its own file and registers itself on the app with one of these.
#pragma once
#include <CLI/CLI.hpp>

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

}  // namespace sinklab::cli
