// llm.c shards: written by hand here and read by sinklab, written by sinklab and read by hand here, every corrupt
// case an error naming the file; SHA-256 against published test vectors and sha256sum.
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include "core/check.h"
#include "data/dataloader.h"
#include "data/sha256.h"
#include "data/shard.h"
#include "data_test_util.h"

namespace sinklab {
namespace {

// The error message of constructing a loader on `glob` (validation windows, so the order is the file order).
std::string loader_error(const std::string& glob, int vocab = 1000) {
    try {
        DataLoader loader(glob, 1, 4, 0, 1, 0, false, vocab);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(Shard, ReadsShardsOfAnIndependentWriter) {
    test::TempDir dir;
    for (const bool uint16 : {true, false}) {
        std::vector<uint32_t> a, b;
        for (uint32_t i = 0; i < 37; ++i) a.push_back(uint16 ? 60000 + i : 70000 + 1000 * i);
        for (uint32_t i = 0; i < 29; ++i) b.push_back(uint16 ? 100 + i : 3000000 + i);
        const std::string prefix = dir / (uint16 ? "u16_" : "u32_");
        test::write_llmc_shard(prefix + "000000.bin", a, uint16);
        test::write_llmc_shard(prefix + "000001.bin", b, uint16);
        std::vector<uint32_t> stream = a;
        stream.insert(stream.end(), b.begin(), b.end());

        const int T = 5;
        DataLoader loader(prefix + "*.bin", 1, T, 0, 1, 0, false, 4000000);
        EXPECT_EQ(loader.tokens(), 66);
        EXPECT_EQ(loader.windows_per_epoch(), (66 - 1) / T);
        std::vector<int32_t> x(T), y(T);
        for (int w = 0; w < loader.windows_per_epoch(); ++w) {  // windows crossing the shard boundary included
            loader.batch_at(w, x.data(), y.data());
            for (int t = 0; t < T; ++t) {
                ASSERT_EQ(static_cast<uint32_t>(x[t]), stream[w * T + t]);
                ASSERT_EQ(static_cast<uint32_t>(y[t]), stream[w * T + t + 1]);
            }
        }
    }
}

TEST(Shard, WriterOutputReadsBackByHand) {
    test::TempDir dir;
    for (const int vocab : {257, 50257, 65536, 65537, 200000}) {
        std::vector<int32_t> ids;
        for (int i = 0; i < 1000; ++i) ids.push_back((i * 7919) % vocab);
        ids.push_back(vocab - 1);
        ShardWriter w(vocab);
        w.append(ids.data(), 400);
        w.append(ids.data() + 400, ids.size() - 400);
        const auto written = w.write(dir / "s.bin");
        EXPECT_EQ(written.tokens, ids.size());
        const std::vector<uint32_t> back = test::read_llmc_shard(dir / "s.bin");
        EXPECT_EQ(std::vector<int32_t>(back.begin(), back.end()), ids) << "vocab " << vocab;
        const std::string bytes = test::read_file(dir / "s.bin");
        EXPECT_EQ(bytes.size(), 1024 + ids.size() * (vocab <= 65536 ? 2 : 4));
        EXPECT_EQ(written.bytes, bytes.size());
        int32_t magic;
        std::memcpy(&magic, bytes.data(), 4);
        EXPECT_EQ(magic, vocab <= 65536 ? 20240520 : 20240801);
        const test::CommandResult sum = test::run_command("sha256sum '" + (dir / "s.bin") + "'");
        ASSERT_EQ(sum.rc, 0);
        EXPECT_EQ(sum.out.substr(0, 64), written.sha256);
        EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1) << "a temporary file is left";
    }
}

TEST(Shard, EveryCorruptionIsAnErrorNamingTheFile) {
    test::TempDir dir;
    const std::vector<uint32_t> tokens(100, 7);
    const auto expect = [&](const std::string& file, const std::vector<std::string>& needles) {
        const std::string msg = loader_error(dir / file);
        ASSERT_FALSE(msg.empty()) << file << ": no error";
        EXPECT_NE(msg.find(dir / file), std::string::npos) << msg;
        for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
    };
    test::write_llmc_shard(dir / "magic.bin", tokens, true, 12345);
    expect("magic.bin", {"magic number 12345"});
    test::write_llmc_shard(dir / "version16.bin", tokens, true, 0, 7);
    expect("version16.bin", {"version 7"});
    test::write_llmc_shard(dir / "version32.bin", tokens, false, 0, 1);
    expect("version32.bin", {"version 1"});
    test::write_file(dir / "short.bin", std::string(500, '\0'));
    expect("short.bin", {"500 bytes", "truncated"});
    test::write_file(dir / "empty.bin", "");
    expect("empty.bin", {"0 bytes"});
    test::write_llmc_shard(dir / "more.bin", tokens, true, 0, 0, 101);  // header promises more than is there
    expect("more.bin", {"101 tokens", "truncated"});
    test::write_llmc_shard(dir / "less.bin", tokens, false, 0, 0, 99);
    expect("less.bin", {"99 tokens"});
    test::write_llmc_shard(dir / "negative.bin", tokens, true, 0, 0, -5);
    expect("negative.bin", {"negative"});
    std::vector<uint32_t> bad = tokens;
    bad[63] = 1000;  // == vocab
    test::write_llmc_shard(dir / "range.bin", bad, true);
    expect("range.bin", {"token 1000 at token offset 63", "byte 1150"});
    bad[63] = 4000000000u;
    test::write_llmc_shard(dir / "range32.bin", bad, false);
    expect("range32.bin", {"token 4000000000 at token offset 63"});
    // The first bad token of the stream, in the shard and at the offset in it where it lies: the stream is checked
    // in chunks of 65,536 tokens, here the second and third of three.
    test::write_llmc_shard(dir / "two_000000.bin", tokens, true);
    std::vector<uint32_t> long_shard(140000, 7);
    long_shard[131000] = 2000;
    long_shard[70000] = 1000;
    test::write_llmc_shard(dir / "two_000001.bin", long_shard, true);
    const std::string two = loader_error(dir / "two_*.bin");
    EXPECT_NE(two.find((dir / "two_000001.bin") + ": token 1000 at token offset 70000"), std::string::npos) << two;

    // A FIFO is refused at once: open() waited for a writer that never came, and the run hung in its setup.
    ASSERT_EQ(::mkfifo((dir / "fifo.bin").c_str(), 0600), 0);
    expect("fifo.bin", {"not a regular file"});

    const std::string none = loader_error(dir / "nothing_*.bin");
    EXPECT_NE(none.find("no token shard matches '" + (dir / "nothing_*.bin") + "'"), std::string::npos) << none;
}

// A shard that shrinks while mapped (truncated, or rewritten in place by cp) killed a run with "Bus error", naming
// nothing; the first read past its new end now exits 1 with the file named.
TEST(ShardDeathTest, ShrinkingWhileMappedIsNamed) {
    test::TempDir dir;
    const std::string path = dir / "s_000000.bin";
    const std::vector<uint32_t> ids(100000, 7);
    test::write_llmc_shard(path, ids, true);
    EXPECT_EXIT(
        {
            const Shard shard(path);
            if (::truncate(path.c_str(), 1024) != 0) std::_Exit(3);
            int32_t last = 0;
            shard.copy(ids.size() - 1, 1, &last);
            std::_Exit(last == 7 ? 4 : 5);
        },
        ::testing::ExitedWithCode(1), "sinklab: error: .*s_000000.bin became shorter while sinklab read it");
    // A SIGBUS outside the mapped files still kills the process by the signal.
    test::write_llmc_shard(path, ids, true);  // whole again
    EXPECT_EXIT(
        {
            const Shard shard(path);
            std::raise(SIGBUS);
        },
        ::testing::KilledBySignal(SIGBUS), "");
}

TEST(Sha256, PublishedTestVectors) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    Sha256 million;  // one million 'a', fed in uneven pieces
    const std::string chunk(997, 'a');
    size_t fed = 0;
    for (; fed + chunk.size() <= 1000000; fed += chunk.size()) million.update(chunk.data(), chunk.size());
    million.update(chunk.data(), 1000000 - fed);
    EXPECT_EQ(million.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace sinklab
