// sinklab prepare: shards read back by hand hold exactly [EOT] + tokens of every input document once, split by
// document; the manifest's counts and checksums are right; the output does not depend on the thread count;
// reruns reuse finished work; bad inputs are errors naming the file.
#include <fstream>
#include <map>

#include <unistd.h>

#include "core/check.h"
#include "core/folder_lock.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "data_test_util.h"

namespace sinklab {
namespace {

constexpr int kBytesEot = 256;

// The documents of one split: its shards, in order, read by hand and cut at EOT (which starts every document).
std::vector<std::vector<int32_t>> read_split(const std::string& dir, const std::string& split, int eot) {
    std::vector<std::vector<int32_t>> docs;
    for (int i = 0;; ++i) {
        const std::string path = fmt::format("{}/{}_{:06d}.bin", dir, split, i);
        if (!std::filesystem::exists(path)) break;
        for (uint32_t t : test::read_llmc_shard(path)) {
            if (static_cast<int>(t) == eot) {
                docs.emplace_back();
            } else {
                EXPECT_FALSE(docs.empty()) << "the stream must start with EOT";
                if (!docs.empty()) docs.back().push_back(static_cast<int32_t>(t));
            }
        }
    }
    return docs;
}

// Writes a small mixed input set and returns the documents it holds.
std::multiset<std::string> write_inputs(const test::TempDir& dir) {
    std::multiset<std::string> docs;
    for (int i = 0; i < 12; ++i) {
        std::string text = fmt::format("Document {} of the folder: ", i);
        for (int k = 0; k <= i * 7; ++k) text += fmt::format("word{} ", k * i);
        test::write_file(dir / fmt::format("in/folder/sub/{:02d}.txt", i), text);
        docs.insert(text);
    }
    test::write_file(dir / "in/folder/.hidden", "not an input");
    nlohmann::json line;
    std::string jsonl;
    for (int i = 0; i < 40; ++i) {
        const std::string text = fmt::format("JSON document {} with ünïcode, \"quotes\"\nand a newline", i);
        jsonl += nlohmann::json{{"text", text}, {"id", i}}.dump() + "\n";
        if (i % 10 == 3) jsonl += "\n";                                       // blank lines are skipped
        if (i % 10 == 5) jsonl += nlohmann::json{{"text", ""}}.dump() + "\n";  // so are empty texts
        docs.insert(text);
    }
    test::write_file(dir / "in/records.jsonl", jsonl);
    test::write_file(dir / "in/stories.txt",
                     "once upon a time\n<|endoftext|>\nthe end\n<|endoftext|>\n\n<|endoftext|>");
    docs.insert("once upon a time");
    docs.insert("the end");
    return docs;
}

PrepareOptions options(const test::TempDir& dir, const std::string& out) {
    PrepareOptions opt;
    opt.inputs = {dir / "in/folder", dir / "in/records.jsonl", dir / "in/stories.txt"};
    opt.out_dir = dir / out;
    opt.tokenizer = "bytes";
    opt.val_fraction = 0.25;
    opt.shard_tokens = 700;
    opt.doc_separator = "<|endoftext|>";
    opt.progress = false;
    return opt;
}

std::string as_text(const std::vector<int32_t>& ids) { return std::string(ids.begin(), ids.end()); }

TEST(Prepare, ShardsHoldEveryDocumentOnce) {
    test::TempDir dir;
    const std::multiset<std::string> want = write_inputs(dir);
    const PrepareResult r = prepare(options(dir, "out"));
    EXPECT_FALSE(r.reused);

    std::multiset<std::string> got;
    std::map<std::string, int> split_of;
    uint64_t tokens[2] = {0, 0};
    for (int s = 0; s < 2; ++s) {
        for (const auto& doc : read_split(dir / "out", s ? "val" : "train", kBytesEot)) {
            got.insert(as_text(doc));
            split_of[as_text(doc)] |= 1 << s;
            tokens[s] += doc.size() + 1;
        }
    }
    EXPECT_EQ(got, want);
    for (const auto& [text, splits] : split_of) EXPECT_NE(splits, 3) << "in both splits: " << text;
    const auto& m = r.manifest;
    EXPECT_EQ(m["train"]["tokens"].get<uint64_t>(), tokens[0]);
    EXPECT_EQ(m["val"]["tokens"].get<uint64_t>(), tokens[1]);
    EXPECT_GT(tokens[1], 0u);
    EXPECT_EQ(m["train"]["documents"].get<size_t>() + m["val"]["documents"].get<size_t>(), want.size());
    EXPECT_EQ(m["sources"].size(), 14u);  // 12 folder files (not the hidden one), the jsonl, the text file
    EXPECT_EQ(m["tokenizer"], "bytes");
    EXPECT_EQ(m["token_dtype"], "uint16");
    for (const char* split : {"train", "val"}) {
        const auto& shards = m[split]["shards"];
        for (size_t i = 0; i < shards.size(); ++i) {
            const std::string path = dir / ("out/" + shards[i]["file"].get<std::string>());
            const test::CommandResult sum = test::run_command("sha256sum '" + path + "'");
            EXPECT_EQ(sum.out.substr(0, 64), shards[i]["sha256"]);
            const uint64_t n = shards[i]["tokens"];
            EXPECT_EQ(test::read_llmc_shard(path).size(), n);
            if (i + 1 < shards.size()) {
                EXPECT_EQ(n, 700u) << "only the last shard of a split may be short";
            }
        }
    }
    EXPECT_EQ(test::read_file(dir / "out/manifest.json"), r.manifest.dump(2) + "\n");
}

TEST(Prepare, OutputDoesNotDependOnThreads) {
    test::TempDir dir;
    write_inputs(dir);
    PrepareOptions one = options(dir, "one"), two = options(dir, "two");
    one.threads = 1;
    two.threads = 3;
    const auto a = prepare(one).manifest, b = prepare(two).manifest;
    for (const char* split : {"train", "val"}) {
        ASSERT_EQ(a[split]["shards"].size(), b[split]["shards"].size());
        for (size_t i = 0; i < a[split]["shards"].size(); ++i)
            EXPECT_EQ(a[split]["shards"][i]["sha256"], b[split]["shards"][i]["sha256"]);
    }
}

TEST(Prepare, Gpt2ShardsHoldTheTokenizersIds) {
    SKIP_WITHOUT_VOCAB();
    test::TempDir dir;
    test::ScopedEnv env("SINKLAB_CACHE", test::cache_root());
    const std::multiset<std::string> want = write_inputs(dir);
    PrepareOptions opt = options(dir, "out");
    opt.tokenizer = "gpt2";
    prepare(opt);
    const auto tok = make_tokenizer("gpt2");
    std::multiset<std::string> got;
    for (const char* split : {"train", "val"})
        for (const auto& doc : read_split(dir / "out", split, 50256)) {
            const std::string text = tok->decode(doc);
            EXPECT_EQ(tok->encode(text), doc);
            got.insert(text);
        }
    EXPECT_EQ(got, want);
}

TEST(Prepare, RerunReusesFinishedWork) {
    test::TempDir dir;
    write_inputs(dir);
    const PrepareOptions opt = options(dir, "out");
    prepare(opt);
    const auto shard = dir / "out/train_000000.bin";
    const auto written = std::filesystem::last_write_time(shard);
    const PrepareResult again = prepare(opt);
    EXPECT_TRUE(again.reused);
    EXPECT_EQ(std::filesystem::last_write_time(shard), written);

    PrepareOptions other = opt;
    other.val_fraction = 0.5;
    EXPECT_FALSE(prepare(other).reused);  // other options
    EXPECT_TRUE(prepare(other).reused);
    test::write_file(dir / "in/folder/sub/00.txt", "changed text");
    EXPECT_FALSE(prepare(other).reused);  // a changed input
    PrepareOptions forced = other;
    forced.force = true;
    EXPECT_FALSE(prepare(forced).reused);
    std::filesystem::remove(dir / "out/val_000000.bin");
    EXPECT_FALSE(prepare(other).reused);  // a missing shard

    // A shard changed since, at its size (renamed into place, as a resume's refusal suggests restoring it), is made
    // again; one only written again with the same bytes (copied with the folder) is taken.
    const std::string bytes = test::read_file(shard);
    std::string edited = bytes;
    edited[edited.size() - 1] ^= 1;
    test::write_file(shard + ".new", edited);
    std::filesystem::rename(shard + ".new", shard);
    EXPECT_FALSE(prepare(other).reused);
    EXPECT_EQ(test::read_file(shard), bytes);
    test::write_file(shard, bytes);
    EXPECT_TRUE(prepare(other).reused);
}

TEST(Prepare, FewerShardsLeaveNoStaleOnes) {
    test::TempDir dir;
    write_inputs(dir);
    PrepareOptions opt = options(dir, "out");
    prepare(opt);
    ASSERT_TRUE(std::filesystem::exists(dir / "out/train_000002.bin"));
    opt.shard_tokens = 1000000;
    prepare(opt);
    EXPECT_TRUE(std::filesystem::exists(dir / "out/train_000000.bin"));
    EXPECT_FALSE(std::filesystem::exists(dir / "out/train_000001.bin"));
}

std::string prepare_error(const PrepareOptions& opt) {
    try {
        prepare(opt);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// Every file of a folder (the hidden ones too) and its bytes.
std::map<std::string, std::string> folder_files(const std::string& dir) {
    std::map<std::string, std::string> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        if (e.is_regular_file()) files[e.path().lexically_relative(dir).string()] = test::read_file(e.path());
    return files;
}

TEST(Prepare, AFailedRerunKeepsThePreviousDataset) {
    test::TempDir dir;
    write_inputs(dir);
    PrepareOptions opt = options(dir, "out");
    prepare(opt);
    const auto before = folder_files(dir / "out");
    ASSERT_TRUE(before.count("manifest.json") && before.count("train_000001.bin"));

    test::write_file(dir / "in/folder/sub/zz.txt", "caf\xe9 au lait");
    opt.shard_tokens = 1000000;  // fewer shards: the old ones would be removed by a successful run
    EXPECT_NE(prepare_error(opt).find("invalid UTF-8"), std::string::npos);
    EXPECT_EQ(folder_files(dir / "out"), before);
}

// A prepare killed while it moved a finished dataset into --out left old and new shards mixed without a manifest:
// train took them without a word and the rerun refused the folder. Now train refuses them, naming the folder, and
// the rerun finishes the move: the folder ends as one clean prepare leaves it.
TEST(Prepare, ARerunFinishesTheMoveAKilledPrepareCutShort) {
    namespace fs = std::filesystem;
    test::TempDir dir;
    write_inputs(dir);
    PrepareOptions opt = options(dir, "out");
    opt.shard_tokens = 300;  // the old dataset: more shards than the new one
    prepare(opt);
    opt.shard_tokens = 700;
    opt.out_dir = dir / "clean";
    prepare(opt);
    const auto clean = folder_files(dir / "clean");

    // The state the kill left: the staging folder whole with its manifest, half of its shards moved already.
    const fs::path out = dir / "out", staging = out / ".prepare.partial";
    fs::copy(dir / "clean", staging);
    fs::remove(out / "manifest.json");
    int moved = 0;
    for (const auto& [name, bytes] : clean)
        if (name != "manifest.json" && moved++ % 2 == 0) fs::rename(staging / name, out / name);
    const auto mixed_error = [&] {
        try {
            check_prepared_tokenizer(out / "train_*.bin", "bytes", "data.train");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(the mixed shards passed)");
    };
    EXPECT_NE(mixed_error().find("matches shards in " + out.string() + ", where sinklab prepare was stopped"),
              std::string::npos)
        << mixed_error();
    {  // the same folder while a prepare still moves the shards: no advice to run it again
        const FolderLock moving(out, "--out folder", "prepare", "give another --out");
        EXPECT_NE(mixed_error().find("matches shards in " + out.string() + ", where `sinklab prepare` (pid " +
                                     std::to_string(::getpid())),
                  std::string::npos)
            << mixed_error();
        EXPECT_NE(mixed_error().find("is putting a new dataset in place: they mix the old and the new one until it "
                                     "ends; wait for it"),
                  std::string::npos)
            << mixed_error();
    }

    opt.out_dir = out;
    prepare(opt);
    EXPECT_EQ(folder_files(out), clean);
    EXPECT_FALSE(fs::exists(staging));
    EXPECT_NO_THROW(check_prepared_tokenizer(out / "train_*.bin", "bytes", "data.train"));
}

// Shards in --out that no manifest of prepare describes (llm.c's scripts name theirs alike) are neither replaced nor
// removed; a manifest edited by hand only makes prepare write the dataset again.
TEST(Prepare, ShardsItDidNotWriteAreKept) {
    test::TempDir dir;
    write_inputs(dir);
    PrepareOptions opt = options(dir, "out");
    test::write_file(dir / "out/train_000000.bin", "someone else's");
    test::write_file(dir / "out/val_000009.bin", "someone else's");
    const auto before = folder_files(dir / "out");
    EXPECT_NE(prepare_error(opt).find("holds "), std::string::npos);
    EXPECT_NE(prepare_error(opt).find("but no manifest.json of sinklab prepare"), std::string::npos);
    EXPECT_EQ(folder_files(dir / "out"), before);
    EXPECT_EQ(test::read_file(dir / "out/train_000000.bin"), "someone else's");

    std::filesystem::remove_all(dir / "out");
    prepare(opt);
    nlohmann::json m = nlohmann::json::parse(test::read_file(dir / "out/manifest.json"));
    m["train"]["shards"][0]["bytes"] = "many";
    test::write_file(dir / "out/manifest.json", m.dump());
    EXPECT_FALSE(prepare(opt).reused);
}

// Options for the inputs given, one split (val fraction 0), into dir/out.
PrepareOptions only_train(const test::TempDir& dir, const std::vector<std::string>& inputs) {
    PrepareOptions opt;
    opt.inputs = inputs;
    opt.out_dir = dir / "out";
    opt.tokenizer = "bytes";
    opt.val_fraction = 0;
    opt.progress = false;
    return opt;
}

std::multiset<std::string> train_documents(const test::TempDir& dir) {
    std::multiset<std::string> docs;
    for (const auto& d : read_split(dir / "out", "train", kBytesEot)) docs.insert(as_text(d));
    return docs;
}

// Links in an input folder are followed, as in Hugging Face's snapshot folders (every file a link into blobs/): to
// files and folders outside it, each file once however many ways lead to it, and a link back up the tree does not
// loop. A broken link is an error naming it.
TEST(Prepare, LinksInAnInputFolderAreFollowedOnce) {
    namespace fs = std::filesystem;
    test::TempDir dir;
    test::write_file(dir / "blobs/abc", "{\"text\": \"from a linked file\"}\n");
    test::write_file(dir / "outside/sub/deep.txt", "from a linked folder");
    test::write_file(dir / "snap/own.txt", "a file of its own");
    fs::create_symlink(dir / "blobs/abc", dir / "snap/train.jsonl");
    fs::create_directories(dir / "snap/nested");
    fs::create_directory_symlink(dir / "outside", dir / "snap/nested/linked");
    fs::create_directory_symlink(dir / "snap", dir / "snap/nested/up");  // back up the tree
    fs::create_symlink(dir / "snap/own.txt", dir / "snap/again.txt");   // the same file by another name
    prepare(only_train(dir, {dir / "snap"}));
    EXPECT_EQ(train_documents(dir),
              (std::multiset<std::string>{"from a linked file", "from a linked folder", "a file of its own"}));

    fs::create_symlink(dir / "nothere.txt", dir / "snap/broken.txt");
    const std::string msg = prepare_error(only_train(dir, {dir / "snap"}));
    EXPECT_NE(msg.find(dir / "snap/broken.txt is a link to " + dir / "nothere.txt, which does not exist"),
              std::string::npos)
        << msg;
}

// Inputs it cannot read as what their names say are refused up front, naming the file: a .json file, a
// compressed file, a name that is not UTF-8, one file given as text and as JSON lines. A file given twice is read
// once. A JSON error quotes at most a short piece of the line.
TEST(Prepare, InputsItCannotReadAreRefusedByName) {
    namespace fs = std::filesystem;
    test::TempDir dir;
    test::write_file(dir / "a.txt", "one document");
    EXPECT_EQ(prepare_error(only_train(dir, {dir / "a.txt", dir / "./a.txt", dir.path()})), "");
    EXPECT_EQ(train_documents(dir), (std::multiset<std::string>{"one document"}));

    test::write_file(dir / "in/export.json", "{\"text\": \"x\"}\n");
    EXPECT_NE(prepare_error(only_train(dir, {dir / "in/export.json"})).find(dir / "in/export.json: a .json file"),
              std::string::npos);
    test::write_file(dir / "in/data.jsonl.gz", std::string("\x1f\x8b\x08\x00\x00\x00", 6));
    EXPECT_NE(prepare_error(only_train(dir, {dir / "in/data.jsonl.gz"})).find("a compressed file"), std::string::npos);
    test::write_file(dir / "latin/caf\xe9.txt", "text");
    EXPECT_NE(prepare_error(only_train(dir, {dir / "latin"})).find("the file's name is not UTF-8"), std::string::npos);
    fs::create_directories(dir / "both");
    test::write_file(dir / "both/d.txt", "{\"text\": \"y\"}\n");
    fs::create_symlink(dir / "both/d.txt", dir / "both/d.jsonl");
    EXPECT_NE(prepare_error(only_train(dir, {dir / "both"})).find("are one file, read once as text and once as JSON"),
              std::string::npos);

    test::write_file(dir / "long.jsonl", "{\"text\": \"" + std::string(100000, 'a') + "\\q\"}\n");
    const std::string msg = prepare_error(only_train(dir, {dir / "long.jsonl"}));
    EXPECT_NE(msg.find(dir / "long.jsonl:1: not a JSON line"), std::string::npos) << msg.substr(0, 300);
    EXPECT_LT(msg.size(), 600u);
}

// A text file of blanks holds no document (as a blank piece between separators holds none), and a UTF-8 byte order
// mark is no part of the text.
TEST(Prepare, BlankFilesHoldNoDocumentAndAByteOrderMarkIsNoText) {
    test::TempDir dir;
    test::write_file(dir / "in/blank.txt", "  \n\t\n");
    test::write_file(dir / "in/bom.txt", "\xef\xbb\xbfwritten on Windows");
    test::write_file(dir / "in/bom-separated.txt", "\xef\xbb\xbf" "first<|endoftext|>second");
    PrepareOptions opt = only_train(dir, {dir / "in/blank.txt", dir / "in/bom.txt"});
    EXPECT_EQ(prepare_error(opt), "");
    EXPECT_EQ(train_documents(dir), (std::multiset<std::string>{"written on Windows"}));
    opt.inputs = {dir / "in/bom-separated.txt"};
    opt.doc_separator = "<|endoftext|>";
    EXPECT_EQ(prepare_error(opt), "");
    EXPECT_EQ(train_documents(dir), (std::multiset<std::string>{"first", "second"}));
}

// A folder of more files than a process may map at once (Linux: about 65k mappings), as one file per article
// makes: each is mapped only while it is read.
TEST(Prepare, AFolderOfMoreFilesThanMappingsAllowed) {
    test::TempDir dir;
    constexpr int kFiles = 66000;
    std::filesystem::create_directories(dir / "in");
    for (int i = 0; i < kFiles; i++) std::ofstream(dir / fmt::format("in/{:05d}.txt", i)) << "doc " << i;
    const PrepareOptions opt = only_train(dir, {dir / "in"});
    EXPECT_EQ(prepare_error(opt), "");
    const std::multiset<std::string> docs = train_documents(dir);
    EXPECT_EQ(docs.size(), size_t(kFiles));
    EXPECT_EQ(docs.count("doc 65999"), 1u);
}

// Two prepares into one --out would share its staging folder: the second is refused while the first holds it.
TEST(Prepare, ASecondPrepareIntoABusyFolderIsRefused) {
    test::TempDir dir;
    write_inputs(dir);
    const PrepareOptions opt = options(dir, "out");
    {
        const FolderLock held(dir / "out", "--out folder", "prepare", "give another --out");
        const std::string msg = prepare_error(opt);
        EXPECT_NE(msg.find("--out folder " + dir / "out is in use by another `sinklab prepare` (pid "),
                  std::string::npos)
            << msg;
        EXPECT_NE(msg.find("give another --out"), std::string::npos) << msg;
        EXPECT_FALSE(std::filesystem::exists(dir / "out/manifest.json"));
    }
    EXPECT_EQ(prepare_error(opt), "");
}

// A shard that the manifest does not list, in a folder that is otherwise up to date (copied in, or left by a sync
// without --delete), would be read by a train_*.bin glob: the rerun makes the dataset again, which removes it.
TEST(Prepare, AnUnlistedShardMakesTheFolderOutOfDate) {
    test::TempDir dir;
    write_inputs(dir);
    const PrepareOptions opt = options(dir, "out");
    prepare(opt);
    EXPECT_TRUE(prepare(opt).reused);
    test::write_file(dir / "out/train_000009.bin", "x");
    EXPECT_FALSE(prepare(opt).reused);
    EXPECT_FALSE(std::filesystem::exists(dir / "out/train_000009.bin"));
}

// The tokenizer check of train and eval: only shards that a manifest of prepare lists are held to its tokenizer.
TEST(Prepare, ShardsAreHeldToTheTokenizerTheirManifestNames) {
    test::TempDir dir;
    write_inputs(dir);
    prepare(options(dir, "out"));
    const std::string glob = dir / "out/*.bin";
    EXPECT_NO_THROW(check_prepared_tokenizer(glob, "bytes", "data.train"));
    try {
        check_prepared_tokenizer(glob, "gpt2", "data.val");
        FAIL() << "shards of the bytes tokenizer passed as gpt2's";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("data.val '" + glob + "' matches " + dir / "out/train_000000.bin"), std::string::npos)
            << msg;
        EXPECT_NE(msg.find("tokenizer bytes (" + dir / "out/manifest.json)"), std::string::npos) << msg;
    }
    // Not held: a shard the manifest does not list, and shards beside a manifest that is not prepare's.
    std::filesystem::copy_file(dir / "out/train_000000.bin", dir / "out/llmc_000000.bin");
    EXPECT_NO_THROW(check_prepared_tokenizer(dir / "out/llmc_*.bin", "gpt2", "data.train"));
    nlohmann::json m = nlohmann::json::parse(test::read_file(dir / "out/manifest.json"));
    m.erase("options");
    test::write_file(dir / "out/manifest.json", m.dump());
    EXPECT_NO_THROW(check_prepared_tokenizer(glob, "gpt2", "data.train"));
    // Nor beside a folder named manifest.json (its stream threw an error that named no file).
    std::filesystem::remove(dir / "out/manifest.json");
    std::filesystem::create_directory(dir / "out/manifest.json");
    EXPECT_NO_THROW(check_prepared_tokenizer(glob, "gpt2", "data.train"));
}

TEST(Prepare, OutputFolderInsideTheInputsIsNoInput) {
    test::TempDir dir;
    write_inputs(dir);
    PrepareOptions opt = options(dir, "in/folder");
    opt.inputs = {dir / "in/folder"};
    const PrepareResult first = prepare(opt);
    EXPECT_TRUE(prepare(opt).reused);  // its own shards and manifest are not new inputs
    opt.force = true;
    const PrepareResult forced = prepare(opt);
    EXPECT_EQ(forced.manifest["sources"], first.manifest["sources"]);
    EXPECT_EQ(forced.manifest["train"], first.manifest["train"]);

    opt.inputs = {dir / "in/folder/train_000000.bin"};
    EXPECT_EQ(prepare_error(opt), fmt::format("input {} is an output of this prepare (--out {}); remove it from the "
                                              "inputs",
                                              dir / "in/folder/train_000000.bin", dir / "in/folder"));
}

TEST(Prepare, OutputThatIsAFileIsOneClearError) {
    test::TempDir dir;
    write_inputs(dir);
    PrepareOptions opt = options(dir, "in/stories.txt");
    EXPECT_EQ(prepare_error(opt), fmt::format("prepare: --out {} is a file; give a folder for the shards and "
                                              "manifest.json",
                                              dir / "in/stories.txt"));
}

TEST(Prepare, BadInputsAreErrorsNamingTheFile) {
    test::TempDir dir;
    write_inputs(dir);
    PrepareOptions opt = options(dir, "out");
    const auto expect = [&](const std::string& msg, const std::vector<std::string>& needles) {
        ASSERT_FALSE(msg.empty()) << "no error; expected " << needles[0];
        for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
    };
    test::write_file(dir / "latin1.txt", "caf\xe9 au lait");
    opt.inputs = {dir / "latin1.txt"};
    expect(prepare_error(opt), {dir / "latin1.txt", "invalid UTF-8 at byte 3"});
    EXPECT_FALSE(std::filesystem::exists(dir / "out")) << "the --out folder it made stayed, empty";

    test::write_file(dir / "sep.txt", "good<|endoftext|>also good<|endoftext|>b\xc3\x28");
    opt.inputs = {dir / "sep.txt"};
    expect(prepare_error(opt), {dir / "sep.txt", "invalid UTF-8 at byte 40"});  // offset in the file

    test::write_file(dir / "empty.txt", "");
    opt.inputs = {dir / "empty.txt"};
    expect(prepare_error(opt), {dir / "empty.txt", "empty file"});

    test::write_file(dir / "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": broken}\n");
    opt.inputs = {dir / "bad.jsonl"};
    expect(prepare_error(opt), {dir / "bad.jsonl:2"});
    test::write_file(dir / "field.jsonl", "{\"text\": \"fine\"}\n\n{\"body\": \"no text\"}\n");
    opt.inputs = {dir / "field.jsonl"};
    expect(prepare_error(opt), {dir / "field.jsonl:3", "\"text\""});

    opt.inputs = {dir / "missing.txt"};
    expect(prepare_error(opt), {dir / "missing.txt", "does not exist"});

    test::write_file(dir / "one.txt", "a single document cannot fill both splits");
    opt.inputs = {dir / "one.txt"};
    expect(prepare_error(opt), {"fell into", "--val-fraction"});
    opt.val_fraction = 0;
    EXPECT_EQ(prepare_error(opt), "");
    EXPECT_TRUE(std::filesystem::exists(dir / "out/train_000000.bin"));
    EXPECT_FALSE(std::filesystem::exists(dir / "out/val_000000.bin"));

    // Before: tokenized whole, some 7 bytes of memory per byte of text. (A sparse file: no disk used.)
    const uint64_t most = uint64_t(256) << 20;
    std::filesystem::resize_file(dir / "one.txt", most + 1);
    expect(prepare_error(opt), {fmt::format("prepare: {} at byte 0: a document of {} bytes, more than "
                                            "--max-document-mib 256",
                                            dir / "one.txt", most + 1),
                                "--doc-separator"});
    // The most is taken: its last document, 256 MiB, fails only where prepare reads it.
    test::write_file(dir / "sep.txt", "good<|endoftext|>also good<|endoftext|>\xff");
    std::filesystem::resize_file(dir / "sep.txt", 39 + most);
    opt.inputs = {dir / "sep.txt"};
    expect(prepare_error(opt), {dir / "sep.txt", "invalid UTF-8 at byte 39"});
    // JSON lines: the text counts, not the line (here 6 bytes of escape a byte of text, and another field).
    const std::string mib(1 << 20, '\x01');
    const auto record = [](const std::string& text) {
        return "{\"text\": " + nlohmann::json(text).dump() + ", \"meta\": \"" + std::string(100, 'm') + "\"}\n";
    };
    test::write_file(dir / "lines.jsonl", record("fine") + record(mib + "x"));
    opt.inputs = {dir / "lines.jsonl"};
    opt.max_document_mib = 1;
    expect(prepare_error(opt), {fmt::format("prepare: {}:2 (its \"text\"): a document of {} bytes, more than "
                                            "--max-document-mib 1",
                                            dir / "lines.jsonl", (1 << 20) + 1),
                                "split the record into several"});
    test::write_file(dir / "lines.jsonl", record("fine") + record(mib));
    opt.shard_tokens = 1 << 21;
    EXPECT_EQ(prepare_error(opt), "");
    opt.shard_tokens = 700;
    opt.max_document_mib = 0;
    expect(prepare_error(opt), {"--max-document-mib 0 must lie in [1, 2^40]"});
    opt.max_document_mib = 256;
    opt.val_fraction = 1.5;
    expect(prepare_error(opt), {"--val-fraction"});
    opt.val_fraction = 0;
    opt.threads = 100000;  // OpenMP crashed starting that many
    expect(prepare_error(opt), {"--threads 100000 must lie in [0, 1024]"});
}

}  // namespace
}  // namespace sinklab
