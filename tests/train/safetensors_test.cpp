// The safetensors writer against the format read byte by byte here (8-byte little-endian header length, JSON
// header, tensors tiling the data), and the reader's refusal of damaged files.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "fs_util.h"
#include "train/safetensors.h"

namespace sinklab::test {
namespace {

struct Sample {
    std::vector<float> a{1.f, -2.f, 3.5f, 0.f, 1e-30f, -7.25f};  // [2, 3]
    std::vector<float> b{9.f, 8.f, 7.f, 6.f, 5.f};              // [5]
};

WrittenFile write_sample(const std::string& path, const Sample& s) {
    SafetensorsWriter w(path, {{"layers.0.a", "F32", {2, 3}}, {"b", "F32", {5}}, {"empty", "F32", {0, 4}}},
                        {{"format", "pt"}, {"note", "two \"quoted\" words"}});
    w.write_next(s.a.data());
    w.write_next(s.b.data());
    w.write_next(nullptr);
    return w.finish();
}

TEST(Safetensors, WriterFollowsTheFormat) {
    const TempDir dir("st_format");
    const Sample s;
    const WrittenFile written = write_sample(dir / "x.safetensors", s);
    const std::string bytes = read_file(dir / "x.safetensors");
    EXPECT_EQ(written.bytes, bytes.size());
    ASSERT_GE(bytes.size(), 8u);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
    EXPECT_EQ(n % 8, 0u) << "data must start 8-byte aligned";
    ASSERT_EQ(bytes[8], '{');
    const auto header = nlohmann::json::parse(bytes.substr(8, n));
    EXPECT_EQ(header["__metadata__"]["format"], "pt");
    EXPECT_EQ(header["__metadata__"]["note"], "two \"quoted\" words");
    const std::string data = bytes.substr(8 + n);
    EXPECT_EQ(data.size(), (6 + 5) * 4u);
    auto check = [&](const char* name, std::vector<int64_t> shape, const std::vector<float>& values) {
        const auto& e = header.at(name);
        EXPECT_EQ(e["dtype"], "F32") << name;
        EXPECT_EQ(e["shape"].get<std::vector<int64_t>>(), shape) << name;
        const auto off = e["data_offsets"].get<std::vector<size_t>>();
        ASSERT_EQ(off[1] - off[0], values.size() * 4) << name;
        EXPECT_EQ(std::memcmp(data.data() + off[0], values.data(), off[1] - off[0]), 0) << name;
    };
    check("layers.0.a", {2, 3}, s.a);
    check("b", {5}, s.b);
    check("empty", {0, 4}, {});
}

TEST(Safetensors, ReaderReturnsWhatWasWritten) {
    const TempDir dir("st_read");
    const Sample s;
    write_sample(dir / "x.safetensors", s);
    const SafetensorsFile f(dir / "x.safetensors");
    ASSERT_EQ(f.tensors().size(), 3u);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    const StoredTensor& a = f.get("layers.0.a", "F32", {2, 3});
    EXPECT_EQ(std::memcmp(a.data, s.a.data(), 24), 0);
    EXPECT_EQ(f.get("b", "F32", {5}).bytes, 20u);
    EXPECT_EQ(f.find("missing"), nullptr);
    try {
        f.get("b", "F32", {6});
        FAIL() << "a wrong shape must be refused";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("[5]"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos) << e.what();
    }
}

// Every damaged variant is refused with the file named and the given words in the message.
TEST(Safetensors, DamagedFilesAreRefused) {
    const TempDir dir("st_bad");
    write_sample(dir / "good.safetensors", Sample{});
    const std::string good = read_file(dir / "good.safetensors");
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= uint64_t(static_cast<unsigned char>(good[i])) << (8 * i);
    std::string wrong_span = good;
    const size_t at = wrong_span.find("[0,24]");
    ASSERT_NE(at, std::string::npos) << good.substr(8, n);
    wrong_span.replace(at, 6, "[0,20]");
    std::string huge = good;
    huge[7] = char(0x7f);
    std::string not_json = good;
    not_json[8] = 'x';
    // Shape [2^62 + 6] of F32 is 2^64 + 24 bytes, which wraps around to the 24 the tensor spans.
    std::string header = good.substr(8, n);
    const size_t shape_at = header.find("[2,3]");
    ASSERT_NE(shape_at, std::string::npos) << header;
    header.replace(shape_at, 5, "[4611686018427387910]");
    std::string wrapping(8, '\0');
    for (int i = 0; i < 8; i++) wrapping[i] = char((header.size() >> (8 * i)) & 0xff);
    wrapping += header + good.substr(8 + n);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {good.substr(0, good.size() - 4), "truncated"},
        {good.substr(0, 5), "truncated"},
        {good.substr(0, 8 + n / 2), "header"},
        {huge, "header"},
        {not_json, "JSON"},
        {wrong_span, "spans"},
        {wrapping, "has the shape [4611686018427387910], 2^64 bytes of F32 or more"},
        {good + "extra", "corrupt"},
    };
    for (size_t i = 0; i < cases.size(); i++) {
        const std::string path = dir / ("bad" + std::to_string(i) + ".safetensors");
        write_file(path, cases[i].first);
        try {
            SafetensorsFile f(path);
            ADD_FAILURE() << "case " << i << " was accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << i << ": " << e.what();
            EXPECT_NE(std::string(e.what()).find(cases[i].second), std::string::npos) << i << ": " << e.what();
        }
    }
}

TEST(Safetensors, UnwritablePathIsNamed) {
    const TempDir dir("st_unwritable");
    write_file(dir / "file", "x");
    try {
        SafetensorsWriter w(dir / "file/sub.safetensors", {}, {});
        FAIL() << "writing below a file must fail";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(dir / "file/sub.safetensors"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace sinklab::test
