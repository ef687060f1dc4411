// sinklab prepare: text files, folders or JSON lines -> llm.c train/val token shards + manifest.json.
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "cli/commands.h"
#include "data/prepare.h"
#include "dist/comm.h"

namespace sinklab::cli {

void add_prepare(CLI::App& app) {
    auto opt = std::make_shared<PrepareOptions>();
    auto quiet = std::make_shared<bool>(false);
    CLI::App* cmd = app.add_subcommand(
        "prepare", "tokenize text into llm.c token shards (train_*.bin, val_*.bin) and a manifest.json");
    cmd->add_option("inputs", opt->inputs,
                    "text files (one document each), folders (every file below), JSON lines (*.jsonl, *.ndjson)")
        ->required();
    cmd->add_option("-o,--out", opt->out_dir, "output folder for the shards and manifest.json")->required();
    cmd->add_option("--tokenizer", opt->tokenizer, "bytes | gpt2")->check(CLI::IsMember({"bytes", "gpt2"}))
        ->capture_default_str();
    cmd->add_option("--val-fraction", opt->val_fraction, "expected share of documents (chosen by hash) for val")
        ->capture_default_str();
    cmd->add_option("--shard-tokens", opt->shard_tokens, "tokens per shard")->capture_default_str();
    cmd->add_option("--text-field", opt->text_field, "JSON lines: the field that holds the text")
        ->capture_default_str();
    cmd->add_option("--doc-separator", opt->doc_separator,
                    "text files: split documents at this string (e.g. '<|endoftext|>'); default: one per file");
    cmd->add_option("--max-document-mib", opt->max_document_mib,
                    "refuse a larger document: each is tokenized whole, at ~7 bytes of memory per byte of text")
        ->capture_default_str();
    cmd->add_option("--threads", opt->threads, "threads (0 = all cores)")->capture_default_str();
    cmd->add_flag("--force", opt->force, "redo even when manifest.json says the shards are up to date");
    cmd->add_flag("-q,--quiet", *quiet, "no progress line");
    cmd->callback([opt, quiet] {
        require_single_process("prepare");
        opt->progress = !*quiet;
        const PrepareResult r = prepare(*opt);
        if (!r.note.empty()) fmt::print(stderr, "sinklab: note: {}\n", r.note);
        const auto& m = r.manifest;
        const auto split = [&](const char* name) {
            return fmt::format("{} {} tokens in {} shard(s)", name, m[name]["tokens"].get<uint64_t>(),
                               m[name]["shards"].size());
        };
        if (r.reused)
            fmt::print("up to date: {}/manifest.json ({}, {}); --force redoes it\n", opt->out_dir, split("train"),
                       split("val"));
        else
            fmt::print("prepared {:.1f} MB in {:.1f} s ({:.1f} MB/s, {} threads, {}): {}, {} -> {}/manifest.json\n",
                       m["input_bytes"].get<double>() / 1e6, m["seconds"].get<double>(),
                       m["input_bytes"].get<double>() / 1e6 / std::max(m["seconds"].get<double>(), 1e-9),
                       m["threads"].get<int>(), m["tokenizer"].get<std::string>(), split("train"), split("val"),
                       opt->out_dir);
    });
}

}  // namespace sinklab::cli
