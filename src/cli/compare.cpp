// sinklab compare RUN_OR_SUITE_DIR... [--baseline NAME] [--smooth N] [--markdown FILE.md] [--plot FILE.png]
//                 [--maps FILE.png]
#include "metrics/compare.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>

#include "cli/commands.h"
#include "core/check.h"
#include "core/file_writer.h"
#include "core/process.h"
#include "dist/comm.h"
#include "metrics/compare_table.h"

namespace sinklab::cli {

namespace {

struct CompareArgs {
    std::vector<std::string> dirs;
    std::string baseline;
    int smooth = 20;
    std::string markdown;
    std::string plot;
    std::string maps;
};

// compare replaces only its own earlier outputs (--markdown, --plot or --maps could name a run's metrics.h5):
// its Markdown starts with this line, which renders as nothing, and plot_runs.py names itself the figure's creator
// in its metadata (PNG, PDF and SVG alike).
constexpr std::string_view kMarkdownFirstLine =
    "<!-- sinklab compare: a later compare --markdown of this name replaces this file -->";
constexpr std::string_view kPlotCreator = "sinklab plot_runs.py";

// Whether `path` is missing, or exists and is what compare wrote there before.
bool replaceable(const std::string& path, bool markdown) {
    std::error_code error;
    if (!std::filesystem::exists(path, error)) return true;
    if (!std::filesystem::is_regular_file(path, error)) return false;
    std::ifstream f(path, std::ios::binary);
    if (markdown) {
        std::string first;
        std::getline(f, first);
        return first == kMarkdownFirstLine;
    }
    constexpr uintmax_t kLargestPlot = 64 << 20;
    if (std::filesystem::file_size(path, error) > kLargestPlot) return false;
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return bytes.find(kPlotCreator) != std::string::npos;
}

void check_output(const std::string& option, const std::string& path, bool markdown) {
    SL_REQUIRE(replaceable(path, markdown),
               "{} {}: the file exists and was not written by sinklab compare, which replaces only its own {}; give "
               "another {} or remove the file",
               option, path, markdown ? "tables" : "plots", option);
    check_writable(option, path);
}

// scripts/plot_runs.py of the checkout this binary was built from, or of $SINKLAB_SCRIPTS.
std::string plot_script(const std::string& option) {
    const char* env = std::getenv("SINKLAB_SCRIPTS");
    const std::filesystem::path dir = env && *env ? env : std::filesystem::path(SINKLAB_SOURCE_DIR) / "scripts";
    const std::filesystem::path script = dir / "plot_runs.py";
    SL_REQUIRE(std::filesystem::is_regular_file(script),
               "{} needs {}, which is missing (this binary was built from another checkout); set SINKLAB_SCRIPTS "
               "to the folder that holds plot_runs.py",
               option, script.string());
    return script.string();
}

// The last non-blank line of a text file.
std::string last_line(const std::string& path) {
    std::ifstream in(path);
    std::string line, last;
    while (std::getline(in, line))
        if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
    return last;
}

// Runs plot_runs.py for --plot and --maps with its stderr (a Python traceback when it fails) in a log file instead
// of the console; a failure is one line with the log's last line and where the whole log is.
void plot(const CompareArgs& a, const std::vector<std::string>& dirs) {
    const std::string option = a.plot.empty() ? "--maps" : "--plot";
    const std::string script = plot_script(option);
    std::string log = (std::filesystem::temp_directory_path() / "sinklab-plot-XXXXXX.log").string();
    const int fd = ::mkstemps(log.data(), 4);
    SL_REQUIRE(fd >= 0, "{}: cannot create a log file in {} ({}); set TMPDIR to a writable folder", option,
               std::filesystem::temp_directory_path().string(), std::strerror(errno));
    ::close(fd);
    std::vector<std::string> argv{"/bin/sh", "-c", "log=$1; shift; exec \"$@\" 2>\"$log\"", "sh", log,
                                  "/usr/bin/python3", script};
    argv.insert(argv.end(), dirs.begin(), dirs.end());
    argv.insert(argv.end(), {"--smooth", std::to_string(a.smooth)});
    if (!a.plot.empty()) argv.insert(argv.end(), {"-o", a.plot});
    if (!a.maps.empty()) argv.insert(argv.end(), {"--maps", a.maps});
    const ProcessResult r = run_process(argv);
    if (!r.ok()) {
        const std::string why = last_line(log);
        // The packages' advice only where a package is what failed.
        fail("plot_runs.py ended with {}: {} (its whole output: {}){}", r.describe(), why, log,
             why.find("ModuleNotFoundError") != std::string::npos || why.find("ImportError") != std::string::npos
                 ? "; it needs /usr/bin/python3 with h5py and matplotlib (apt install python3-h5py python3-matplotlib)"
                 : "");
    }
    std::filesystem::remove(log);
    for (const std::string& out : {a.plot, a.maps})
        if (!out.empty()) fmt::print("wrote {}\n", out);
}

void run(const CompareArgs& a) {
    // Before any work, so that a long comparison never ends on a path it cannot write.
    const std::vector<std::pair<std::string, std::string>> outputs{
        {"--markdown", a.markdown}, {"--plot", a.plot}, {"--maps", a.maps}};
    for (size_t i = 0; i < outputs.size(); i++) {
        const auto& [option, path] = outputs[i];
        if (path.empty()) continue;
        check_output(option, path, option == "--markdown");
        for (size_t j = 0; j < i; j++)  // through links too: one file written twice would keep only the second
            SL_REQUIRE(outputs[j].second.empty() || std::filesystem::weakly_canonical(path) !=
                                                        std::filesystem::weakly_canonical(outputs[j].second),
                       "{} {} is the {} file too; give it another name", option, path, outputs[j].first);
    }
    std::vector<std::string> notes;
    const std::vector<std::string> dirs = find_runs(a.dirs, notes);
    for (const std::string& n : notes) fmt::print(stderr, "sinklab compare: {}\n", n);
    std::vector<RunCurves> runs;
    for (const std::string& d : dirs) runs.push_back(read_run(d));
    const Comparison c = compare_runs(runs, a.baseline, a.smooth);
    for (const std::string& n : c.notes) fmt::print(stderr, "sinklab compare: {}\n", n);
    fmt::print("{}", comparison_text(c));
    if (!a.markdown.empty()) {
        replace_file_durably(a.markdown, std::string(kMarkdownFirstLine) + "\n" + comparison_markdown(c));
        fmt::print("wrote {}\n", a.markdown);
    }
    if (!a.plot.empty() || !a.maps.empty()) plot(a, dirs);
}

}  // namespace

void add_compare(CLI::App& app) {
    auto* cmd = app.add_subcommand("compare",
                                   "compare runs: loss, tokens to the baseline's loss, sink metrics (mean ± "
                                   "sd over seeds); also while they run");
    auto a = std::make_shared<CompareArgs>();
    cmd->add_option("runs", a->dirs, "run folders, or suite folders holding run folders (runs/<suite>)")->required();
    cmd->add_option("--baseline", a->baseline, "the variant the others are measured against (default: the first)");
    cmd->add_option("--smooth", a->smooth, "train losses averaged for the final loss and the curves (default 20)")
        ->check(at_least(1));
    cmd->add_option("--markdown", a->markdown,
                    "also write the tables as Markdown to this file (new, or an earlier compare's)");
    cmd->add_option("--plot", a->plot,
                    "draw loss curves (seed bands) and sink-mass heatmaps into this PNG (new, or an earlier "
                    "compare's)");
    cmd->add_option("--maps", a->maps,
                    "draw the W_O input's std by position and the attention maps of each variant's last logged rows "
                    "into this PNG (new, or an earlier compare's)");
    cmd->callback([a] {
        require_single_process("compare");
        run(*a);
    });
}

}  // namespace sinklab::cli
