// Text -> llm.c token shards: `sinklab prepare`.
//
// Inputs are text files (one document each, or split at --doc-separator), folders (every file below them, sorted,
// through links, hidden ones skipped, each file once) and JSON-lines files (*.jsonl, *.ndjson: one document per
// line, from a string field).
// Each document goes whole to train or to val, by a hash of its text, so that the choice depends on nothing else
// (duplicates land together, on any number of threads). Each split is one token stream, EOT before every
// document (as llm.c's scripts do), cut into shards of shard_tokens: <out>/train_000000.bin, ..., val_000000.bin.
// <out>/manifest.json records the sources, options, token counts and sha256 of every shard; a rerun whose inputs
// (paths, sizes, modification times) and options match it, with its shards present, does nothing.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sinklab {

struct PrepareOptions {
    std::vector<std::string> inputs;
    std::string out_dir;
    std::string tokenizer = "gpt2";
    double val_fraction = 0.005;          // expected share of documents (by hash) that go to val
    int64_t shard_tokens = 100'000'000;   // tokens per shard (the last one of a split holds the rest)
    std::string text_field = "text";      // JSON lines: the field with the document's text
    std::string doc_separator;            // text files: split documents here (e.g. <|endoftext|>); empty = whole file
    // A larger document is refused: it is tokenized whole, at some 7 bytes of memory per byte of text (JSON lines:
    // of the text field as decoded, not of the line).
    int64_t max_document_mib = 256;
    int threads = 0;                      // 0 = all cores
    bool force = false;                   // redo even when the manifest says it is done
    bool progress = true;                 // a \r progress line on stderr (when it is a terminal)
};

struct PrepareResult {
    nlohmann::json manifest;
    bool reused = false;  // the existing shards matched; nothing was written
    std::string note;     // why --out could not be locked against a second prepare ("" when it was)
};

PrepareResult prepare(const PrepareOptions& opt);

// Fails, naming the manifest, when a shard matched by `glob` is listed in a manifest.json of prepare that names
// another tokenizer than `tokenizer`: the ids would still fit a large enough vocabulary and train silently wrong.
// Shards without such a manifest (llm.c's, synthetic ones) are not checked.
// Fails the same way, before that, when the folder of a matched shard holds a dataset that a killed prepare was
// putting in place: its shards are a mix of the old and the new dataset.
void check_prepared_tokenizer(const std::string& glob, const std::string& tokenizer, const char* key);

// The folder of a shard matched by `glob` into which a killed prepare was putting a finished dataset, or "". The
// same prepare, run again, finishes that first.
std::string interrupted_prepare(const std::string& glob);

}  // namespace sinklab
