#include "data/prepare.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <thread>

#include "config/schema.h"
#include "core/check.h"
#include "core/file_writer.h"
#include "core/folder_lock.h"
#include "core/progress.h"
#include "core/threads.h"
#include "core/utc_time.h"
#include "data/glob.h"
#include "data/mapped_file.h"
#include "data/sha256.h"
#include "data/shard.h"
#include "core/rng.h"
#include "data/tokenizer.h"
#include "data/unicode.h"

namespace sinklab {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kItemBytes = 1 << 20;  // work handed to one thread at a time
constexpr int kItemsPerThreadPerRound = 4;

struct Source {
    std::string path;
    bool jsonl = false;
    uint64_t bytes = 0;
    int64_t mtime_ns = 0;
    uint64_t documents = 0;
};

std::string lower_extension(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext;
}

bool is_jsonl(const fs::path& p) {
    const std::string ext = lower_extension(p);
    return ext == ".jsonl" || ext == ".ndjson";
}

// Lexically: the path the walk reached, whatever a link on it points at (a link's target may lie outside `root`).
bool hidden_below(const fs::path& file, const fs::path& root) {
    for (const fs::path& part : file.lexically_relative(root))
        if (part.string().starts_with(".")) return true;
    return false;
}

// Inputs that are not text prepare can read, told by their name or first bytes: a .json file (JSON lines are read
// from .jsonl and .ndjson only, since a .json file may hold one document over many lines) and compressed files,
// whose bytes would otherwise reach the invalid-UTF-8 check, or pass it as latin-1 text would.
void require_readable_kind(const fs::path& file, const std::string& path) {
    SL_REQUIRE(lower_extension(file) != ".json",
               "{}: a .json file; prepare reads JSON lines (one object per line, as Hugging Face's to_json writes) "
               "from .jsonl or .ndjson files: rename it if it is JSON lines, or convert it",
               path);
    char head[6] = {};
    std::ifstream(file, std::ios::binary).read(head, sizeof head);
    const std::string_view h(head, sizeof head);
    const bool compressed = h.starts_with("\x1f\x8b") || h.starts_with("\x28\xb5\x2f\xfd") ||
                            h.starts_with(std::string_view("\xfd" "7zXZ\0", 6)) || h.starts_with("BZh") ||
                            h.starts_with("PK\x03\x04");
    SL_REQUIRE(!compressed, "{}: a compressed file (gzip, zstd, xz, bzip2 or zip); decompress it first", path);
}

Source describe(const fs::path& file) {
    Source s;
    s.path = fs::absolute(file).lexically_normal().string();
    SL_REQUIRE(utf8_invalid_offset(s.path) == std::string::npos,
               "{}: the file's name is not UTF-8, which manifest.json cannot record; rename it", s.path);
    require_readable_kind(file, s.path);
    s.jsonl = is_jsonl(file);
    s.bytes = fs::file_size(file);
    s.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(fs::last_write_time(file).time_since_epoch())
                     .count();
    SL_REQUIRE(s.bytes > 0, "{}: empty file, so there is nothing to tokenize; remove it from the inputs", s.path);
    return s;
}

// The names of what prepare writes into its output folder (and the temporary names of its shards).
bool is_output_name(const fs::path& file) {
    static const std::regex kOutput(R"((train|val)_\d{6}\.bin(\.tmp\d+)?|manifest\.json)");
    return std::regex_match(file.filename().string(), kOutput);
}

// A shard or the manifest of out_dir itself, met when out_dir lies inside an input folder.
bool is_own_output(const fs::path& file, const fs::path& out_dir) {
    std::error_code ec;
    return is_output_name(file) && fs::equivalent(file.parent_path(), out_dir, ec);
}

// Every file below `folder`, through links to files and folders (as Hugging Face's snapshot folders are made of),
// without hidden ones, prepare's own output, or a folder twice (a link back up the tree). A broken link, and a
// folder that cannot be listed, are errors naming them.
std::vector<fs::path> files_below(const fs::path& folder, const fs::path& out_dir) {
    std::vector<fs::path> files;
    std::set<fs::path> folders = {fs::canonical(folder)};
    fs::path at = folder;  // where the walk is, for an error that names no path
    try {
        const fs::recursive_directory_iterator end;
        for (fs::recursive_directory_iterator it(folder, fs::directory_options::follow_directory_symlink); it != end;
             ++it) {
            at = it->path();
            if (hidden_below(at, folder)) {
                it.disable_recursion_pending();
                continue;
            }
            SL_REQUIRE(fs::exists(it->symlink_status()) && (!it->is_symlink() || fs::exists(at)),
                       "{} is a link to {}, which does not exist; fix or remove the link", at.string(),
                       fs::read_symlink(at).string());
            if (it->is_directory()) {
                if (!folders.insert(fs::canonical(at)).second) it.disable_recursion_pending();
            } else if (it->is_regular_file() && !is_own_output(at, out_dir)) {
                files.push_back(at);
            }
        }
    } catch (const fs::filesystem_error& e) {
        fail("input folder {}: cannot read {} ({})", folder.string(),
             e.path1().empty() ? at.string() : e.path1().string(), e.code().message());
    }
    return files;
}

std::vector<Source> collect_sources(const std::vector<std::string>& inputs, const fs::path& out_dir) {
    std::vector<Source> sources;
    for (const std::string& input : inputs) {
        const fs::path p(input);
        SL_REQUIRE(fs::exists(p), "input {} does not exist", input);
        if (!fs::is_directory(p)) {
            SL_REQUIRE(fs::is_regular_file(p), "input {} is neither a file nor a folder", input);
            SL_REQUIRE(!is_own_output(fs::absolute(p), out_dir),
                       "input {} is an output of this prepare (--out {}); remove it from the inputs", input,
                       out_dir.string());
            sources.push_back(describe(p));
            continue;
        }
        std::vector<fs::path> files = files_below(p, out_dir);
        SL_REQUIRE(!files.empty(), "input folder {} holds no files", input);
        std::sort(files.begin(), files.end());
        for (const fs::path& f : files) sources.push_back(describe(f));
    }
    // One file given twice (a folder and a file in it, two spellings, a link) is read once.
    std::map<fs::path, const Source*> seen;
    std::vector<Source> once;
    for (const Source& s : sources) {
        const auto [it, fresh] = seen.emplace(fs::canonical(s.path), &s);
        if (fresh) {
            once.push_back(s);
            continue;
        }
        SL_REQUIRE(it->second->jsonl == s.jsonl,
                   "{} and {} are one file, read once as text and once as JSON lines by their names; give one of them",
                   it->second->path, s.path);
    }
    return once;
}

// Consecutive documents (text) or lines (JSON lines) of one source: what one thread tokenizes at a time.
struct Item {
    size_t source = 0;
    uint64_t first_line = 0;  // JSON lines: the 1-based line number of ranges[0]
    uint64_t bytes = 0;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [begin, end) byte offsets into the source
};

struct Document {
    uint64_t tokens;  // count, in ItemResult::tokens order
    bool val;
};

struct ItemResult {
    std::vector<int32_t> tokens;  // all documents' tokens, one after the other
    std::vector<Document> docs;
    std::exception_ptr error;
};

std::string_view trim_newlines(std::string_view s) {
    while (!s.empty() && (s.front() == '\n' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

// A UTF-8 byte order mark (editors on Windows write one) is no part of a text file's text; the JSON parser skips it
// in JSON lines.
uint64_t bom_bytes(std::string_view text) { return text.starts_with("\xef\xbb\xbf") ? 3 : 0; }

// A document is tokenized whole, its tokens and GPT-2 pieces taking some 7 bytes of memory per byte of text: a 40 GB
// text file without --doc-separator would have needed 270 GB before anything said so. Text files are checked as their
// items are made, before any tokenizing; JSON lines once parsed (the text, not its escaped form, counts). `at` is
// the document's byte offset in a text file, its line in JSON lines.
void check_document_size(uint64_t bytes, const PrepareOptions& opt, const Source& src, uint64_t at) {
    SL_REQUIRE(bytes <= uint64_t(opt.max_document_mib) << 20,
               "prepare: {}: a document of {} bytes, more than --max-document-mib {} (each is tokenized whole, at "
               "some 7 bytes of memory a byte); {}, or raise the limit",
               src.jsonl ? fmt::format("{}:{} (its \"{}\")", src.path, at, opt.text_field)
                         : fmt::format("{} at byte {}", src.path, at),
               bytes, opt.max_document_mib,
               src.jsonl ? "split the record into several"
                         : "a text file is one document unless --doc-separator splits it: split it into documents "
                           "(--doc-separator, JSON lines) or files");
}

void make_items(size_t index, const Source& src, std::string_view text, const PrepareOptions& opt,
                std::vector<Item>& items) {
    Item cur;
    cur.source = index;
    uint64_t line = 1;
    const auto add = [&](uint64_t begin, uint64_t end) {
        if (!src.jsonl) check_document_size(end - begin, opt, src, begin);
        if (cur.ranges.empty()) cur.first_line = line;
        cur.ranges.emplace_back(begin, end);
        cur.bytes += end - begin;
        if (cur.bytes >= kItemBytes) {
            items.push_back(std::move(cur));
            cur = Item();
            cur.source = index;
        }
    };
    if (src.jsonl) {
        for (uint64_t begin = 0; begin < text.size(); ++line) {
            const size_t nl = text.find('\n', begin);
            const uint64_t end = nl == std::string_view::npos ? text.size() : nl;
            add(begin, end);
            begin = end + 1;
        }
    } else if (opt.doc_separator.empty()) {
        if (!blank(text.substr(bom_bytes(text)))) add(bom_bytes(text), text.size());
    } else {
        for (uint64_t begin = bom_bytes(text); begin <= text.size();) {
            const size_t at = text.find(opt.doc_separator, begin);
            const uint64_t end = at == std::string_view::npos ? text.size() : at;
            const std::string_view doc = trim_newlines(text.substr(begin, end - begin));
            if (!blank(doc)) {
                const uint64_t doc_begin = doc.data() - text.data();
                add(doc_begin, doc_begin + doc.size());
            }
            begin = end + opt.doc_separator.size();
        }
    }
    if (!cur.ranges.empty()) items.push_back(std::move(cur));
}

// Which split a document goes to: a hash of its text alone, mapped to [0, 1), against the val fraction.
bool goes_to_val(std::string_view text, double val_fraction) {
    const uint64_t h = mix64(fnv1a(text.data(), text.size()));  // the full mix: so that every bit counts
    return static_cast<double>(h >> 11) * 0x1.0p-53 < val_fraction;
}

void process(const Item& item, const Source& src, std::string_view text, const Tokenizer& tok,
             const PrepareOptions& opt, ItemResult& out) {
    const auto add = [&](std::string_view doc) {
        const std::vector<int32_t> ids = tok.encode(doc);
        out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
        out.docs.push_back({ids.size(), goes_to_val(doc, opt.val_fraction)});
    };
    uint64_t line = item.first_line;
    for (const auto& [begin, end] : item.ranges) {
        const std::string_view piece = text.substr(begin, end - begin);
        if (!src.jsonl) {
            require_utf8(piece, src.path, begin);
            add(piece);
            continue;
        }
        if (!blank(piece)) {
            nlohmann::json record;
            try {
                record = nlohmann::json::parse(piece);
            } catch (const nlohmann::json::exception& e) {
                // nlohmann's message quotes what it read of the line, which may be megabytes.
                fail("{}:{}: not a JSON line ({})", src.path, line, config::clipped(e.what(), 200));
            }
            const auto field = record.is_object() ? record.find(opt.text_field) : record.end();
            SL_REQUIRE(record.is_object() && field != record.end() && field->is_string(),
                       "{}:{}: expected a JSON object with a string field \"{}\" (set it with --text-field)",
                       src.path, line, opt.text_field);
            const std::string& doc = field->get_ref<const std::string&>();
            check_document_size(doc.size(), opt, src, line);
            if (!doc.empty()) add(doc);
        }
        ++line;
    }
}

// One split's token stream, cut into shards of shard_tokens as it grows.
class SplitWriter {
public:
    SplitWriter(std::string dir, std::string prefix, int vocab_size, int64_t shard_tokens)
        : dir_(std::move(dir)), prefix_(std::move(prefix)), writer_(vocab_size), shard_tokens_(shard_tokens) {}

    void add_document(int32_t eot, const int32_t* ids, uint64_t n) {
        append(&eot, 1);
        append(ids, n);
        ++documents_;
    }

    void finish() {
        if (writer_.tokens() > 0) flush();
    }

    uint64_t tokens() const { return tokens_; }
    uint64_t documents() const { return documents_; }

    nlohmann::json summary() const {
        nlohmann::json shards = nlohmann::json::array();
        for (const auto& w : written_)
            shards.push_back({{"file", fs::path(w.path).filename().string()},
                              {"tokens", w.tokens},
                              {"bytes", w.bytes},
                              {"sha256", w.sha256}});
        return {{"documents", documents_}, {"tokens", tokens_}, {"shards", shards}};
    }

private:
    void append(const int32_t* ids, uint64_t n) {
        while (n > 0) {
            const uint64_t take = std::min<uint64_t>(n, shard_tokens_ - writer_.tokens());
            writer_.append(ids, take);
            ids += take, n -= take, tokens_ += take;
            if (writer_.tokens() == static_cast<uint64_t>(shard_tokens_)) flush();
        }
    }

    void flush() {
        written_.push_back(writer_.write(fmt::format("{}/{}_{:06d}.bin", dir_, prefix_, written_.size())));
    }

    std::string dir_, prefix_;
    ShardWriter writer_;
    int64_t shard_tokens_;
    uint64_t tokens_ = 0, documents_ = 0;
    std::vector<ShardWriter::Written> written_;
};

nlohmann::json options_json(const PrepareOptions& opt) {
    return {{"tokenizer", opt.tokenizer},
            {"val_fraction", opt.val_fraction},
            {"shard_tokens", opt.shard_tokens},
            {"text_field", opt.text_field},
            {"doc_separator", opt.doc_separator}};
}

nlohmann::json sources_json(const std::vector<Source>& sources, bool with_counts) {
    nlohmann::json out = nlohmann::json::array();
    for (const Source& s : sources) {
        nlohmann::json j = {{"path", s.path}, {"bytes", s.bytes}, {"mtime_ns", s.mtime_ns}};
        if (with_counts) j["documents"] = s.documents;
        out.push_back(j);
    }
    return out;
}

// The manifest.json at `path` if prepare wrote it, else null (missing, unreadable, or someone else's). Its options
// and sources are the mark by which prepare replaces a folder's shards.
nlohmann::json read_prepare_manifest(const fs::path& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return nlohmann::json();  // a folder threw from the stream, naming no file
    std::ifstream in(path);
    nlohmann::json m = in ? nlohmann::json::parse(in, nullptr, false) : nlohmann::json();
    return m.is_object() && m.contains("options") && m.contains("sources") ? m : nlohmann::json();
}

// The shard entries ({"file", "bytes", ...}) a manifest of prepare lists, train's then val's; throws
// nlohmann::json::exception where one edited by hand lacks them.
std::vector<nlohmann::json> listed_shards(const nlohmann::json& m) {
    std::vector<nlohmann::json> shards;
    for (const char* split : {"train", "val"})
        for (const auto& shard : m.at(split).at("shards")) shards.push_back(shard);
    return shards;
}

// The manifest at `path`, when it describes these very inputs and options and all its shards are in place.
std::optional<nlohmann::json> up_to_date(const fs::path& path, const PrepareOptions& opt,
                                         const std::vector<Source>& sources) {
    nlohmann::json m = read_prepare_manifest(path);
    if (m.is_null() || m["options"] != options_json(opt)) return std::nullopt;
    std::set<std::string> listed = {"manifest.json"};
    std::error_code ec;
    const auto manifest_written = fs::last_write_time(path, ec);
    try {  // a manifest edited by hand is no reason to stop: the dataset is made again
        nlohmann::json old_sources = m["sources"];
        for (auto& s : old_sources) s.erase("documents");
        if (old_sources != sources_json(sources, false)) return std::nullopt;
        for (const nlohmann::json& shard : listed_shards(m)) {
            const fs::path f = path.parent_path() / shard.at("file").get<std::string>();
            if (fs::file_size(f, ec) != shard.at("bytes").get<uint64_t>() || ec) return std::nullopt;
            // Shards are written before their manifest: a later one was changed since (edited, or another file
            // renamed into place), or copied with the folder. Its hash tells which.
            if (fs::last_write_time(f, ec) > manifest_written &&
                sha256_hex(MappedFile(f.string()).view()) != shard.at("sha256").get<std::string>())
                return std::nullopt;
            listed.insert(f.filename().string());
        }
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
    // A shard the manifest does not list (copied in, or left by a sync without --delete) would be read by a
    // train_*.bin glob: the dataset is made again, which removes it.
    for (const auto& entry : fs::directory_iterator(path.parent_path()))
        if (is_output_name(entry.path()) && !listed.contains(entry.path().filename().string())) return std::nullopt;
    return m;
}

// prepare replaces the shards of an earlier prepare only, which its manifest.json marks: llm.c's scripts and others
// name their shards as it does, and publish() removes the old shards that the new dataset has no namesake for.
void check_replaceable(const fs::path& out_dir) {
    std::error_code ec;
    if (!fs::is_directory(out_dir, ec)) return;
    if (!read_prepare_manifest(out_dir / "manifest.json").is_null()) return;
    for (const auto& entry : fs::directory_iterator(out_dir, ec))
        SL_REQUIRE(!(entry.is_regular_file() && is_output_name(entry.path())),
                   "prepare: --out {} holds {} but no manifest.json of sinklab prepare, so prepare would replace or "
                   "remove shards it did not write; give an empty or new folder (or delete what an interrupted "
                   "prepare left there)",
                   out_dir.string(), entry.path().filename().string());
}

// The folder where a dataset is made whole before it replaces the one in `out_dir`: hidden, so that no glob of out_dir
// and no walk of an input folder sees it. Its manifest, written last, says it is complete.
fs::path staging_of(const fs::path& out_dir) { return out_dir / ".prepare.partial"; }

// Moves the complete new dataset from `staging` into `out_dir`, replacing the old one: its manifest goes first
// (it no longer describes the shards), then each new shard replaces its namesake, the old shards the new dataset has
// no namesake for go, and the new manifest comes last. Every step can be done again, so a prepare killed on the way
// finishes the move at its next start; until then the staging folder's manifest marks the shards as mixed.
void publish(const fs::path& staging, const fs::path& out_dir) {
    std::set<std::string> fresh = {"manifest.json"};
    for (const nlohmann::json& shard : listed_shards(read_prepare_manifest(staging / "manifest.json")))
        fresh.insert(shard.at("file").get<std::string>());
    fs::remove(out_dir / "manifest.json");
    for (const auto& entry : fs::directory_iterator(staging)) {
        const std::string name = entry.path().filename().string();
        if (name != "manifest.json") fs::rename(entry.path(), out_dir / name);
    }
    for (const auto& entry : fs::directory_iterator(out_dir)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file() && is_output_name(name) && !fresh.contains(name)) fs::remove(entry.path());
    }
    fs::rename(staging / "manifest.json", out_dir / "manifest.json");
    fs::remove(staging);
    sync_dir(out_dir.string());
}

bool holds_finished_staging(const fs::path& out_dir) {
    return !read_prepare_manifest(staging_of(out_dir) / "manifest.json").is_null();
}

// Tokenizes every source on `opt.threads` threads and writes the shards and the manifest.
nlohmann::json write_shards(const PrepareOptions& opt, const Tokenizer& tok, std::vector<Source>& sources,
                            const fs::path& out_dir, const fs::path& manifest_path) {
    const int threads =
        opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

    std::vector<Item> items;
    uint64_t total_bytes = 0;
    for (size_t i = 0; i < sources.size(); ++i) {
        const MappedFile file(sources[i].path);
        make_items(i, sources[i], file.view(), opt, items);
        total_bytes += sources[i].bytes;
    }

    SplitWriter train(out_dir.string(), "train", tok.vocab_size(), opt.shard_tokens);
    SplitWriter val(out_dir.string(), "val", tok.vocab_size(), opt.shard_tokens);
    using Clock = std::chrono::steady_clock;
    const Clock::time_point start = Clock::now();
    const auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    std::optional<Progress> progress;
    if (opt.progress) progress.emplace(int64_t(total_bytes), "prepare");
    uint64_t done_bytes = 0;
    const size_t round = static_cast<size_t>(threads) * kItemsPerThreadPerRound;
    std::vector<ItemResult> results;
    for (size_t first = 0; first < items.size(); first += round) {
        const size_t count = std::min(round, items.size() - first);
        results.assign(count, {});
        // Only this round's sources are mapped: a process holds at most about 65k mappings, and a folder may hold
        // more files.
        std::map<size_t, MappedFile> files;
        for (size_t k = 0; k < count; ++k) {
            const size_t source = items[first + k].source;
            files.try_emplace(source, sources[source].path);  // maps a source once
        }
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
        for (int64_t k = 0; k < static_cast<int64_t>(count); ++k) {
            const Item& item = items[first + k];
            try {
                process(item, sources[item.source], files.at(item.source).view(), tok, opt, results[k]);
            } catch (...) {
                results[k].error = std::current_exception();
            }
        }
        for (size_t k = 0; k < count; ++k) {  // in input order, so the shards do not depend on the threads
            ItemResult& r = results[k];
            if (r.error) std::rethrow_exception(r.error);
            const int32_t* ids = r.tokens.data();
            for (const Document& d : r.docs) {
                (d.val ? val : train).add_document(tok.eot(), ids, d.tokens);
                ids += d.tokens;
            }
            sources[items[first + k].source].documents += r.docs.size();
            done_bytes += items[first + k].bytes;
        }
        if (progress) {
            const double mbps = double(done_bytes) / 1e6 / std::max(seconds(), 1e-9);
            progress->update(int64_t(done_bytes),
                             fmt::format("{:.1f} / {:.1f} MB  {:.1f} MB/s  {:.2f}M tokens  ETA {}", done_bytes / 1e6,
                                         total_bytes / 1e6, mbps, double(train.tokens() + val.tokens()) / 1e6,
                                         format_duration(double(total_bytes - done_bytes) / 1e6 / mbps)));
        }
    }
    if (progress) progress->finish();

    const uint64_t documents = train.documents() + val.documents();
    SL_REQUIRE(documents > 0, "prepare: the inputs hold no document (only blank text or empty JSON records)");
    SL_REQUIRE(train.documents() > 0 && (val.documents() > 0 || opt.val_fraction == 0),
               "prepare: all {} document(s) fell into {} at --val-fraction {}; documents are split whole, so give "
               "more of them (--doc-separator splits a text file) or change --val-fraction (0 = no val)",
               documents, train.documents() > 0 ? "train" : "val", opt.val_fraction);
    train.finish();
    val.finish();

    const double elapsed = seconds();
    nlohmann::json manifest = {
        {"sinklab_version", SINKLAB_VERSION},
        {"format", "llm.c token shards: 256 int32 header (magic, version, token count), then the tokens"},
        {"tokenizer", tok.name()},
        {"vocab_size", tok.vocab_size()},
        {"eot", tok.eot()},
        {"token_dtype", shard_token_bytes(tok.vocab_size()) == 2 ? "uint16" : "uint32"},
        {"layout", "one token stream per split, EOT before every document"},
        {"options", options_json(opt)},
        {"sources", sources_json(sources, true)},
        {"train", train.summary()},
        {"val", val.summary()},
        {"input_bytes", total_bytes},
        {"seconds", elapsed},
        {"threads", threads},
        {"created", utc_now_iso8601()}};
    replace_file_durably(manifest_path.string(), manifest.dump(2) + "\n");
    return manifest;
}

}  // namespace

void check_prepared_tokenizer(const std::string& glob, const std::string& tokenizer, const char* key) {
    struct Made {
        std::string tokenizer;         // empty: no manifest of prepare, or one that cannot be read
        std::set<std::string> shards;  // file names it lists
    };
    if (const std::string mixed = interrupted_prepare(glob); !mixed.empty()) {
        const std::string holder = folder_lock_holder(mixed);
        SL_REQUIRE(holder.empty(),
                   "{} '{}' matches shards in {}, where {} is putting a new dataset in place: they mix the old and the "
                   "new one until it ends; wait for it",
                   key, glob, mixed, holder);
        fail("{} '{}' matches shards in {}, where sinklab prepare was stopped while it put a new dataset in place: "
             "they mix the old and the new one; run that prepare again, which finishes the move first",
             key, glob, mixed);
    }
    std::map<fs::path, Made> made_in;  // folder -> what its manifest says
    for (const std::string& file : glob_files(glob)) {
        const fs::path folder = fs::path(file).parent_path(), manifest = folder / "manifest.json";
        auto [it, fresh] = made_in.try_emplace(folder);
        Made& made = it->second;
        if (fresh) {
            const nlohmann::json m = read_prepare_manifest(manifest);
            try {  // a manifest edited past reading says nothing about the shards
                if (!m.is_null() && m.contains("tokenizer")) {
                    for (const nlohmann::json& shard : listed_shards(m))
                        made.shards.insert(shard.at("file").get<std::string>());
                    made.tokenizer = m["tokenizer"].get<std::string>();
                }
            } catch (const nlohmann::json::exception&) {
                made = Made{};
            }
        }
        const bool listed = made.shards.count(fs::path(file).filename().string()) > 0;
        if (made.tokenizer.empty() || made.tokenizer == tokenizer || !listed) continue;
        fail("{} '{}' matches {}, which sinklab prepare made with tokenizer {} ({}), but data.tokenizer is '{}'; set "
             "data.tokenizer to the shards' tokenizer (and model.vocab_size to fit its ids) or make shards with "
             "`sinklab prepare --tokenizer {}`",
             key, glob, file, made.tokenizer, manifest.string(), tokenizer, tokenizer);
    }
}

std::string interrupted_prepare(const std::string& glob) {
    std::set<fs::path> folders;
    for (const std::string& file : glob_files(glob)) folders.insert(fs::path(file).parent_path());
    for (const fs::path& folder : folders)
        if (holds_finished_staging(folder)) return folder.string();
    return "";
}

PrepareResult prepare(const PrepareOptions& opt) {
    SL_REQUIRE(!opt.inputs.empty(), "prepare: no inputs given");
    SL_REQUIRE(!opt.out_dir.empty(), "prepare: no output folder given (--out)");
    SL_REQUIRE(opt.val_fraction >= 0 && opt.val_fraction < 1, "prepare: --val-fraction {} must lie in [0, 1)",
               opt.val_fraction);
    SL_REQUIRE(opt.shard_tokens > 0 && opt.shard_tokens <= INT32_MAX,
               "prepare: --shard-tokens {} must lie in [1, 2^31-1] (the llm.c header counts tokens in an int32)",
               opt.shard_tokens);
    SL_REQUIRE(opt.threads >= 0 && opt.threads <= kMaxThreads,
               "prepare: --threads {} must lie in [0, {}] (0 = all cores)", opt.threads, kMaxThreads);
    SL_REQUIRE(!opt.text_field.empty(), "prepare: --text-field must not be empty");
    SL_REQUIRE(opt.max_document_mib >= 1 && opt.max_document_mib <= (int64_t(1) << 40),
               "prepare: --max-document-mib {} must lie in [1, 2^40]", opt.max_document_mib);

    const fs::path out_dir(opt.out_dir);
    SL_REQUIRE(!fs::exists(out_dir) || fs::is_directory(out_dir),
               "prepare: --out {} is a file; give a folder for the shards and manifest.json", opt.out_dir);
    // Two prepares into one folder would share its staging folder below.
    const FolderLock lock(opt.out_dir, "--out folder", "prepare", "give another --out");
    const auto tok = make_tokenizer(opt.tokenizer);
    std::vector<Source> sources = collect_sources(opt.inputs, out_dir);
    const fs::path manifest_path = out_dir / "manifest.json", staging = staging_of(out_dir);
    if (holds_finished_staging(out_dir)) publish(staging, out_dir);  // what a killed prepare left half done
    if (!opt.force)
        if (auto done = up_to_date(manifest_path, opt, sources)) return {std::move(*done), true, lock.note()};
    check_replaceable(out_dir);

    // The new dataset is made whole in the staging folder while the old one stays usable, and replaces it only once
    // complete: a failed rerun loses nothing.
    std::error_code ec;
    const bool made_out_dir = !fs::exists(out_dir, ec);
    fs::remove_all(staging, ec);
    fs::create_directories(staging, ec);
    SL_REQUIRE(!ec, "prepare: cannot create {} ({}); give another --out", staging.string(), ec.message());
    nlohmann::json manifest;
    try {
        manifest = write_shards(opt, *tok, sources, staging, staging / "manifest.json");
    } catch (...) {
        fs::remove_all(staging, ec);
        if (made_out_dir) fs::remove(out_dir, ec);  // only while empty: nothing of anyone else's goes
        throw;
    }
    publish(staging, out_dir);
    return {std::move(manifest), false, lock.note()};
}

}  // namespace sinklab
