// sinklab: one binary, one subcommand per file in src/cli.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "cli/commands.h"
#include "config/suggest.h"
#include "core/build_info.h"
#include "core/check.h"
#include "core/file_writer.h"
#include "core/process.h"
#include "dist/comm.h"

namespace {

// For an argument like an option of `cmd` but none of them (`--sett`), the advice naming the option it is a typo of
// ("" when no option is within two edits): CLI11 says only that the argument was not expected.
std::string option_advice(const CLI::App& cmd, int argc, char** argv) {
    std::vector<std::string> names;  // --name of every option
    for (const CLI::Option* option : cmd.get_options())
        for (const std::string& name : option->get_lnames()) names.push_back("--" + name);
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i], word = arg.substr(0, arg.find('='));
        if (!word.starts_with("--") || std::find(names.begin(), names.end(), word) != names.end()) continue;
        std::string best;
        int closest = 3;
        for (const std::string& name : names)
            if (const int d = sinklab::config::edit_distance(word, name); d < closest) closest = d, best = name;
        if (!best.empty()) return fmt::format(" ({} is no option of sinklab {}: did you mean {}?)", word,
                                              cmd.get_name(), best);
    }
    return "";
}

// The usage error as one line, in the form of every other sinklab error, with the command whose --help explains
// the usage. CLI11 reports a first word that is no command as "A subcommand is required": it is named here.
std::string usage_error(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
    const CLI::App* cmd = &app;
    while (!cmd->get_subcommands().empty()) cmd = cmd->get_subcommands().front();
    std::string message = e.what();
    if (cmd == &app) {
        std::vector<std::string> names;
        for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
            names.push_back(sub->get_name());
        const bool named = argc > 1 && argv[1][0] != '-';
        message = fmt::format("{}; the commands are {}",
                              named ? fmt::format("unknown command '{}'", argv[1]) : std::string("no command given"),
                              fmt::join(names, ", "));
    }
    const std::string help = cmd == &app ? "sinklab --help" : "sinklab " + cmd->get_name() + " --help";
    if (cmd != &app) message += option_advice(*cmd, argc, argv);
    return fmt::format("{}; run '{}'", message, help);
}

// Started with stdin, stdout or stderr closed (`>&-`), the process would give that number to the next file it opens
// (a lock file, metrics.h5), and what it prints would go into it.
void keep_standard_streams_open() {
    for (int fd = 0; fd <= 2; fd++)
        if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
}

// libgomp reads its wait policy from the environment as it loads, before main. Unset, a thread that waits for work
// spins first, keeping its core from the threads that have work whenever the machine runs anything else (another
// run, the ranks of an mpirun, a build): beside two busy processes, a 2-thread bench of tiny.yaml ran 3-9x faster
// with the policy passive, which costs about 7% on idle cores. So a process that finds no policy chosen
// (OMP_WAIT_POLICY or GOMP_SPINCOUNT) sets passive and starts itself again; a chosen one (active, for a machine of
// its own) stays.
void start_with_passive_openmp(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    ::execv("/proc/self/exe", argv);  // returns only when it fails: then the process goes on as it is
}

// A process started again through /proc/self/exe is named "exe" (the name the kernel keeps for ps, top, pgrep and
// killall): it takes back the name it was started by, at most 15 bytes as the kernel keeps it.
void keep_process_name(const char* argv0) {
    const std::string name = std::filesystem::path(argv0).filename().string().substr(0, 15);
    if (!name.empty()) ::prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
}

}  // namespace

int main(int argc, char** argv) {
    keep_standard_streams_open();
    start_with_passive_openmp(argv);
    if (argc > 0) keep_process_name(argv[0]);
    // A file-size limit (ulimit -f) would end the process at the write that crosses it, without a word and with its
    // files half written; dropped, that write fails with EFBIG and is reported like a full disk.
    sinklab::drop_signal(SIGXFSZ);
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
        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            if (e.get_exit_code() != 0) sinklab::exit_with_usage_error(usage_error(app, e, argc, argv));
            app.exit(e);  // --help and --version, whose output must reach its reader too
        }
        sinklab::flush_standard_output();
    } catch (const std::exception&) {
        // Under mpirun every rank ends, the message printed once.
        sinklab::exit_with_error(sinklab::message_of(std::current_exception()));
    }
    return 0;
}
