// sinklab: one binary, one subcommand per file in src/cli.

#include "cli/commands.h"
#include "core/build_info.h"
#include "core/check.h"
#include "dist/comm.h"

int main(int argc, char** argv) {
    CLI::App app{"sinklab: pre-train small LLMs and measure attention sinks"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string(SINKLAB_VERSION) + " (" + sinklab::git_rev() + ")");
    sinklab::cli::add_train(app);
    sinklab::cli::add_info(app);
    sinklab::cli::add_bench(app);
    sinklab::cli::add_prepare(app);
    sinklab::cli::add_tokenize(app);
    sinklab::cli::add_sweep(app);
    sinklab::cli::add_compare(app);
    sinklab::cli::add_export(app);
    sinklab::cli::add_eval(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::exception& e) {
        sinklab::exit_with_error(e.what());  // under mpirun: every rank ends, the message printed once
    }
    return 0;
}
