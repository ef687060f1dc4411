// scripts/plot_runs.py on metrics.h5 files written here: a PNG from a suite folder (one variant without /sink
// rows), through `sinklab compare --plot` as well, its maps figure (--maps) from trained runs' last rows, and a
// clear failure for a folder without runs. Skipped when /usr/bin/python3 lacks h5py or matplotlib.
#include "ablation_fixture.h"
#include "cli_util.h"
#include "core/process.h"
#include "metrics/compare.h"
#include "train/train_util.h"

namespace sinklab::test {
namespace {

RunSpec curve(double start, bool sink) {
    RunSpec s;
    s.max_steps = 40;
    for (int step = 1; step <= 40; step++) s.loss.push_back(start / (1.0 + 0.05 * step));
    s.val = {{20, start / 2.0}, {40, start / 3.1}};
    if (!sink) return s;
    for (int step = 5; step <= 40; step += 5) {
        const double m = 0.02 * step;
        s.sink.push_back({step, {m, m, m / 2, m / 2}, {0, 1}, {2, 1, 1, 2, 1, 1}, {3, 3}});
    }
    return s;
}

// Runs Python `body` in `dir` after importing scripts/plot_runs.py (and h5py, numpy as np): it passes when it ends
// printing `ok`.
void expect_python_check(const TempDir& dir, const std::string& body, const std::string& ok) {
    write_file(dir / "check.py", fmt::format("import sys, h5py, numpy as np; sys.path.insert(0, '{}/scripts'); "
                                             "import plot_runs\n",
                                             SINKLAB_SOURCE_DIR) +
                                     body);
    const CommandResult r = run_command("/usr/bin/python3 " + dir / "check.py");
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find(ok), std::string::npos) << r.out;
}

bool is_png(const fs::path& file) {
    const std::string head = read_file(file).substr(0, 8);
    return head == std::string("\x89PNG\r\n\x1a\n", 8);
}

class PlotTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!plot_deps_available())
            GTEST_SKIP() << "/usr/bin/python3 lacks h5py or matplotlib (apt install python3-h5py python3-matplotlib)";
        write_run(suite() / "baseline-s1", curve(5.0, true));
        write_run(suite() / "baseline-s2", curve(5.2, true));
        write_run(suite() / "headnorm-s1", curve(4.8, false));
    }
    fs::path root() const { return fs::path(dir_.path()); }
    fs::path suite() const { return root() / "suite"; }
    TempDir dir_;
};

TEST_F(PlotTest, ScriptDrawsAPngOfASuite) {
    const fs::path png = root() / "out.png";
    const ProcessResult r =
        run_process({"/usr/bin/python3", kPlotScript, suite().string(), "-o", png.string(), "--smooth", "5"});
    ASSERT_TRUE(r.ok()) << r.describe();
    ASSERT_TRUE(fs::exists(png));
    EXPECT_TRUE(is_png(png));
    EXPECT_GT(fs::file_size(png), 10000u);  // two panels of curves and a heatmap, not an empty canvas

    const fs::path maps = root() / "maps.png";  // runs without /heavy rows, one without /sink rows: panels say so
    ASSERT_TRUE(run_process({"/usr/bin/python3", kPlotScript, suite().string(), "--maps", maps.string()}).ok());
    EXPECT_TRUE(is_png(maps));
    EXPECT_GT(fs::file_size(maps), 10000u);

    const fs::path token8 = root() / "token8.png";  // a position no run tracks: panels say so, no failure
    EXPECT_TRUE(run_process({"/usr/bin/python3", kPlotScript, (suite() / "baseline-s1").string(), "-o", token8.string(),
                             "--position", "8"})
                    .ok());
    EXPECT_TRUE(is_png(token8));
}

// A plot that fails to write (a full disk; a file-size limit here) leaves the earlier plot whole (it was cut to the
// limit) and no temporary file, and says so in one line (matplotlib's PDF writer raised a second error closing).
TEST_F(PlotTest, AFailedWriteKeepsTheEarlierPlot) {
    for (const std::string name : {"out.png", "out.svg", "out.pdf"}) {
        const fs::path plot = root() / name;
        ASSERT_TRUE(run_process({"/usr/bin/python3", kPlotScript, suite().string(), "-o", plot.string()}).ok());
        const std::string earlier = read_file(plot);
        const CommandResult r =
            run_command(fmt::format("bash -c \"ulimit -f 4; exec /usr/bin/python3 {} {} -o {}\"", kPlotScript,
                                    suite().string(), plot.string()));
        EXPECT_NE(r.rc, 0);
        EXPECT_EQ(r.out, "plot_runs.py: -o " + plot.string() + ": cannot write it (File too large)\n");
        EXPECT_TRUE(read_file(plot) == earlier) << name;
        for (const auto& e : fs::directory_iterator(root()))
            EXPECT_FALSE(e.path().filename().string().starts_with(".")) << "left behind: " << e.path();
    }
}

TEST_F(PlotTest, AFolderWithoutRunsFailsClearly) {
    fs::create_directories(root() / "empty");
    const CommandResult r = run_command(fmt::format("/usr/bin/python3 {} {} -o {}", kPlotScript,
                                                (root() / "empty").string(), (root() / "x.png").string()));
    EXPECT_NE(r.rc, 0);
    expect_has(r.out, {"plot_runs.py: ", "empty holds no run"});
    EXPECT_FALSE(fs::exists(root() / "x.png"));
}

// Standalone, the script refuses before any work an output it cannot write or that compare could not recognize
// again, and runs grouped as seeds of one variant that differ in their layers, each with one line instead of a
// Python traceback.
TEST_F(PlotTest, BadOutputsAndMismatchedSeedsFailClearly) {
    const auto plot_to = [&](const fs::path& runs, const std::string& out) {
        return run_command(fmt::format("/usr/bin/python3 {} {} -o {}", kPlotScript, runs.string(), out));
    };
    fs::create_directories(root() / "folder");
    for (const std::string& out : {(root() / "no/such/x.png").string(), (root() / "x.bogus").string(),
                                  (root() / "folder").string()}) {
        const CommandResult r = plot_to(suite(), out);
        EXPECT_NE(r.rc, 0) << out;
        EXPECT_TRUE(r.out.starts_with("plot_runs.py: -o " + out + ": ")) << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    }
    EXPECT_FALSE(fs::exists(root() / "folder.png"));
    for (const auto& [args, says] :
         {std::pair{"--maps " + (root() / "m.txt").string(), "--maps " + (root() / "m.txt").string() + ": give"},
          std::pair{"-o " + (root() / "a.png").string() + " --maps " + (root() / "a.png").string(),
                    "--maps " + (root() / "a.png").string() + " is the -o file too"},
          std::pair{std::string("--smooth 3"), std::string("give -o FILE, --maps FILE or both")}}) {
        const CommandResult r =
            run_command(fmt::format("/usr/bin/python3 {} {} {}", kPlotScript, suite().string(), args));
        EXPECT_NE(r.rc, 0) << args;
        EXPECT_TRUE(r.out.starts_with("plot_runs.py: " + says)) << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    }
    EXPECT_FALSE(fs::exists(root() / "a.png"));

    RunSpec three = curve(5.0, false);
    three.L = 3;
    three.sink = {{5, {0.1, 0.1, 0.1, 0.1, 0.1, 0.1}, {0, 1, 0}, {2, 1, 1, 2, 1, 1, 2, 1, 1}, {3, 3, 3}}};
    write_run(root() / "mixed/baseline-s1", curve(5.0, true));
    write_run(root() / "mixed/baseline-s2", three);
    const CommandResult mixed = plot_to(root() / "mixed", (root() / "mixed.png").string());
    EXPECT_NE(mixed.rc, 0);
    expect_has(mixed.out, {"plot_runs.py: the runs of variant baseline differ in their number of layers"});
    EXPECT_EQ(std::count(mixed.out.begin(), mixed.out.end(), '\n'), 1) << mixed.out;
}

// What a suite folder may also hold: a diverged run (NaN losses: fault.nan_policy skip), a run set aside in a hidden
// folder (compare skips those), a sweep.yaml that is not a suite's. The plot is drawn; the hidden run is not in it.
TEST_F(PlotTest, DivergedRunsHiddenFoldersAndOddManifestsStillPlot) {
    RunSpec diverged = curve(5.0, true);
    for (size_t i = 1; i < diverged.loss.size(); i++) diverged.loss[i] = std::nan("");
    for (double& v : diverged.sink.back().wo_std) v = std::nan("");
    write_run(suite() / "diverged-s1", diverged);
    write_run(suite() / "diverged-s2", curve(5.0, true));  // a seed that did not diverge: its values are the mean
    write_run(suite() / ".old-s1", curve(9.0, true));
    for (const std::string manifest : {"variants: 5\n", "- 1\n- 2\n", "just text\n", "variants: [[1]]\n", "a: [\n"}) {
        write_file(suite() / "sweep.yaml", manifest);
        const fs::path png = root() / "odd.png";
        fs::remove(png);
        const CommandResult r =
            run_command(fmt::format("/usr/bin/python3 {} {} -o {}", kPlotScript, suite().string(), png.string()));
        EXPECT_EQ(r.rc, 0) << manifest << r.out;
        EXPECT_EQ(r.out.find("Traceback"), std::string::npos) << r.out;
        EXPECT_TRUE(is_png(png)) << manifest;
    }
    const fs::path maps = root() / "odd-maps.png";
    const CommandResult drawn = run_command(
        fmt::format("/usr/bin/python3 {} {} --maps {}", kPlotScript, suite().string(), maps.string()));
    EXPECT_EQ(drawn.rc, 0) << drawn.out;
    EXPECT_EQ(drawn.out, "");  // no warning about NaN means either
    EXPECT_TRUE(is_png(maps));
    write_file(root() / "found.py", fmt::format("import sys; sys.path.insert(0, '{}/scripts'); import plot_runs\n"
                                                "print(' '.join(plot_runs.find_runs(['{}'])))\n",
                                                SINKLAB_SOURCE_DIR, suite().string()));
    const CommandResult found = run_command("/usr/bin/python3 " + (root() / "found.py").string());
    EXPECT_EQ(found.rc, 0) << found.out;
    EXPECT_EQ(found.out.find(".old"), std::string::npos) << found.out;
    EXPECT_NE(found.out.find("diverged-s1"), std::string::npos) << found.out;
}

TEST_F(PlotTest, CompareDrawsThePlotThroughTheScript) {
    const fs::path png = root() / "compare.png";
    const CommandResult r = run_sinklab(fmt::format("compare {} --plot {}", suite().string(), png.string()));
    ASSERT_EQ(r.rc, 0) << r.out;
    expect_has(r.out, {"\nbaseline: target train loss", "wrote " + png.string()});
    EXPECT_EQ(r.out.find("baseline baseline"), std::string::npos) << r.out;
    EXPECT_TRUE(is_png(png));

    // SINKLAB_SCRIPTS points --plot at another scripts folder; one without the script is a clear error.
    setenv("SINKLAB_SCRIPTS", root().c_str(), 1);
    const CommandResult bad = run_sinklab(fmt::format("compare {} --plot {}", suite().string(), png.string()));
    unsetenv("SINKLAB_SCRIPTS");
    EXPECT_EQ(bad.rc, 1);
    expect_has(bad.out, {"plot_runs.py, which is missing", "SINKLAB_SCRIPTS"});

    // A script that fails is named with its last line; the packages' advice comes only when an import failed.
    for (const auto& [raise, advice] : {std::pair{"ValueError('no scale')", false},
                                        std::pair{"ModuleNotFoundError(\"No module named 'h5py'\")", true}}) {
        write_file(root() / "plot_runs.py", fmt::format("raise {}\n", raise));
        setenv("SINKLAB_SCRIPTS", root().c_str(), 1);
        const CommandResult failed = run_sinklab(fmt::format("compare {} --plot {}", suite().string(), png.string()));
        unsetenv("SINKLAB_SCRIPTS");
        EXPECT_EQ(failed.rc, 1);
        EXPECT_NE(failed.out.find(advice ? "No module named 'h5py'" : "ValueError: no scale"), std::string::npos)
            << failed.out;
        EXPECT_EQ(failed.out.find("apt install") != std::string::npos, advice) << failed.out;
    }
}

// Two seeds of a run with /heavy rows every 2 steps, stopped after step 5 of 6 (a finished run logs both groups at
// its last step): the maps figure shows, per variant, the mean over seeds of each run's last wo_input_std and
// attn_map rows (read here by index with h5py), and compare draws it.
TEST_F(PlotTest, MapsShowTheLastRowsMeanOverSeeds) {
    const TempDir dir("plot_maps");
    for (const char* seed : {"1", "2"}) {
        const CommandResult trained = run_sinklab(
            small_run(dir, std::string("std-s") + seed, 6,
                      std::string("--set attention.variant=standard --set metrics.heavy_every=2 --set run.seed=") +
                          seed),
            "SINKLAB_FAULT_INJECT=signal@5");
        ASSERT_EQ(trained.rc, 0) << trained.out;
    }
    expect_python_check(dir, fmt::format(
        "runs = ['{0}/std-s1', '{0}/std-s2']\n"
        "files = [h5py.File(r + '/metrics.h5', 'r', swmr=True) for r in runs]\n"
        "for group, column, key, step in [('sink', 'wo_input_std', 'wo_std', 5),\n"
        "                                 ('heavy', 'attn_map', 'attn_map', 4)]:\n"
        "    rows = [f[group][column][...] for f in files]\n"
        "    assert [int(f[group]['step'][-1]) for f in files] == [step, step], group\n"
        "    assert not np.allclose(rows[0][-1], rows[1][-1]) and not np.allclose(rows[0][0], rows[0][-1]), column\n"
        "    mean, steps = plot_runs.seed_mean([plot_runs.read_run(r, 0, True)[key] for r in runs])\n"
        "    assert steps == f'step {{step}}', steps\n"
        "    assert np.allclose(mean, (rows[0][-1] + rows[1][-1]) / 2, rtol=0, atol=1e-7), column\n"
        "print('last rows ok')\n",
        dir.path()), "last rows ok");

    const std::string maps = dir / "maps.png";
    const CommandResult compared = run_sinklab(fmt::format("compare {} --maps {}", dir.path(), maps));
    ASSERT_EQ(compared.rc, 0) << compared.out;
    expect_has(compared.out, {"wrote " + maps});
    EXPECT_TRUE(is_png(maps));
    fs::create_directory_symlink(dir.path(), dir / "link");
    for (const std::string& again : {dir / "./maps.png", dir / "link/maps.png"}) {
        const CommandResult same = run_sinklab(fmt::format("compare {} --plot {} --maps {}", dir.path(), maps, again));
        EXPECT_EQ(same.rc, 1);
        expect_has(same.out, {"--maps " + again + " is the --plot file too"});
    }
    const std::string fresh = dir / "new.png";
    const CommandResult md = run_sinklab(fmt::format("compare {} --maps {} --markdown {}", dir.path(), fresh, fresh));
    EXPECT_EQ(md.rc, 1);
    expect_has(md.out, {"--maps " + fresh + " is the --markdown file too"});
    EXPECT_FALSE(fs::exists(fresh));
}

// Runs of one name in several folders are grouped by as much of their folder's path as tells the folders apart, as
// compare's table names them (the C++ of compare_runs here), so that the plot never pools two suites' seeds.
TEST_F(PlotTest, RunsOfOneNameInSeveralFoldersAreGroupedAsCompareDoes) {
    const std::vector<fs::path> folders = {root() / "runs/s", root() / "runs-new/s", root() / "x/other"};
    std::vector<std::string> dirs;
    for (const fs::path& f : folders)
        for (const char* run : {"b-s1", "b-s2"}) {
            write_run(f / run, curve(5.0, true));
            dirs.push_back((f / run).string());
        }
    std::vector<RunCurves> runs;
    for (const std::string& d : dirs) runs.push_back(read_run(d));
    std::string by_compare;
    for (const GroupRow& g : compare_runs(runs, "", 2).groups)
        for (size_t i = 0; i < g.runs.size(); i++) by_compare += g.name + "\n";
    EXPECT_EQ(by_compare, "runs/s/b\nruns/s/b\nruns-new/s/b\nruns-new/s/b\nx/other/b\nx/other/b\n");

    std::string list;
    for (const std::string& d : dirs) list += "'" + d + "', ";
    write_file(root() / "groups.py", fmt::format("import sys; sys.path.insert(0, '{}/scripts'); import plot_runs\n"
                                                 "print('\\n'.join(plot_runs.group_names([{}])))\n",
                                                 SINKLAB_SOURCE_DIR, list));
    const CommandResult r = run_command("/usr/bin/python3 " + (root() / "groups.py").string());
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(r.out, by_compare);
}

// A trained run whose attn_mass columns are tokens 0, 3, 5 (metrics.positions [3, 0], row 5 isolated): the script
// plots each token's mass from its own column, read here by index.
TEST_F(PlotTest, EachTokensMassComesFromItsColumn) {
    const TempDir dir("plot_positions");
    const CommandResult trained = run_sinklab(small_run(
        dir, "iso-s1", 3, "--set metrics.positions=[3,0] --set intervention.isolate=[5] --set metrics.every=1"));
    ASSERT_EQ(trained.rc, 0) << trained.out;
    expect_python_check(dir, fmt::format(
        "mass = h5py.File('{}/iso-s1/metrics.h5', 'r')['sink/attn_mass'][...]\n"
        "for column, token in [(0, 0), (1, 3), (2, 5)]:\n"
        "    run = plot_runs.read_run('{}/iso-s1', token)\n"
        "    assert run['tracked'], token\n"
        "    assert np.allclose(run['mass'], mass[:, :, :, column].mean(axis=2), rtol=0, atol=1e-7), token\n"
        "assert not np.allclose(mass[..., 0], mass[..., 1]) and not np.allclose(mass[..., 1], mass[..., 2])\n"
        "print('columns ok')\n",
        dir.path(), dir.path()), "columns ok");
}

// The maps figure leaves the rows an intervention changes out of the std lines, as compare's ratios do (a 30-fold
// amplified row 3 would set the scale): their columns become gaps, position 0 stays (the one measured, isolated or
// not), and the positions come from metrics.h5's config_yaml.
TEST_F(PlotTest, MapsLeaveTheIntervenedRowsOut) {
    const TempDir dir("plot_intervened");
    const CommandResult trained = run_sinklab(
        small_run(dir, "amp-s1", 2,
                  "--set intervention.isolate=[0,5] --set intervention.amplify.position=3 "
                  "--set intervention.amplify.lambda=30 --set intervention.amplify.layers=[0,1] --set metrics.every=1"));
    ASSERT_EQ(trained.rc, 0) << trained.out;
    fs::remove(dir / "amp-s1/config.yaml");
    expect_python_check(dir, fmt::format(
        "run = plot_runs.read_run('{0}/amp-s1', 0, True)\n"
        "assert run['intervened'] == [0, 5, 3], run['intervened']\n"
        "std = h5py.File('{0}/amp-s1/metrics.h5', 'r')['sink/wo_input_std'][-1]\n"
        "assert (std[:, 3] > 5 * std[:, 4]).all(), std\n"
        "shown, left_out = plot_runs.without_intervened(run['wo_std'][1], run['intervened'])\n"
        "assert left_out == [5, 3], left_out\n"
        "kept = [t for t in range(std.shape[1]) if t not in (3, 5)]\n"
        "assert np.isnan(shown[:, [3, 5]]).all() and np.array_equal(shown[:, kept], std[:, kept])\n"
        "print('left out ok')\n",
        dir.path()), "left out ok");
    const std::string maps = dir / "maps.png";
    ASSERT_TRUE(run_process({"/usr/bin/python3", kPlotScript, dir / "amp-s1", "--maps", maps}).ok());
    EXPECT_TRUE(is_png(maps));
}

}  // namespace
}  // namespace sinklab::test
