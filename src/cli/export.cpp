// sinklab export RUN --format hf [--out DIR] [--checkpoint DIR] [--overwrite]: a run's checkpoint as a Hugging
// Face Llama.
#include <filesystem>

#include "cli/commands.h"
#include "core/check.h"
#include "dist/comm.h"
#include "metrics/runlog_reader.h"
#include "train/checkpoint.h"
#include "train/hf_export.h"

namespace sinklab::cli {

namespace {

struct ExportArgs {
    std::string run;
    std::string format;
    std::string out;         // default: RUN/hf
    std::string checkpoint;  // default: the run's newest
    bool overwrite = false;
};

void run_export(const ExportArgs& a) {
    const std::string out = a.out.empty() ? (std::filesystem::path(a.run) / "hf").string() : a.out;
    // The folder itself is export_hf_llama's to check (a run or checkpoint folder as --out is refused there).
    std::filesystem::path out_dir = std::filesystem::absolute(out);
    if (!out_dir.has_filename()) out_dir = out_dir.parent_path();  // "DIR/"
    refuse_output_in_other_runs("--out", out, out_dir.parent_path().string(), a.run);
    // An export anywhere in the run folder reads as the run's (RUN/hf goes with the run on --overwrite, other
    // subfolders stay): it must not land in a run that replaced the exported one while the export ran.
    const bool into_run = lies_in(out, a.run);
    const std::string exported_run = into_run ? run_identity(a.run) : "";
    const std::string ckpt = checkpoint_to_read(a.run, a.checkpoint, into_run);
    export_hf_llama(ckpt, out, a.overwrite, [&] {
        SL_REQUIRE(!into_run || run_identity(a.run) == exported_run,
                   "{}: another run replaced the exported one (train --overwrite) while this export ran, so its files "
                   "were not written; export the new run, or give an --out outside the run folder",
                   a.run);
    });
    fmt::print("exported {} to {}: config.json + model.safetensors (LlamaForCausalLM, fp32, tied embeddings)\n", ckpt,
               out);
}

}  // namespace

void add_export(CLI::App& app) {
    auto* cmd = app.add_subcommand("export", "write a run's checkpoint in another framework's format");
    auto args = std::make_shared<ExportArgs>();
    cmd->add_option("run", args->run, "run folder (<out_dir>/<name>)")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--format", args->format, "hf: a Hugging Face Llama folder (standard attention only)")
        ->required()
        ->check(CLI::IsMember({"hf"}));
    cmd->add_option("--out", args->out, "output folder (default: RUN/hf)");
    cmd->add_option("--checkpoint", args->checkpoint, "checkpoint folder (default: the run's newest)");
    cmd->add_flag("--overwrite", args->overwrite,
                  "replace a config.json and model.safetensors in --out that an earlier export did not write");
    cmd->callback([args] {
        require_single_process("export");
        run_export(*args);
    });
}

}  // namespace sinklab::cli
