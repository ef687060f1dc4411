// sinklab: one binary, one subcommand per file in src/cli.
#include <cstdio>

#include "cli/commands.h"
#include "core/check.h"

int main(int argc, char** argv) {
    CLI::App app{"sinklab: pre-train small LLMs and measure attention sinks"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string(SINKLAB_VERSION) + " (" + SINKLAB_GIT_REV + ")");
    sinklab::cli::add_train(app);
    sinklab::cli::add_info(app);
    sinklab::cli::add_bench(app);
    sinklab::cli::add_prepare(app);
    sinklab::cli::add_tokenize(app);
    sinklab::cli::add_sweep(app);
    sinklab::cli::add_compare(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sinklab: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
