// sinklab tokenize: the token ids of a whole input as one document, or (--decode) ids back to text.
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "core/check.h"
#include "core/file_writer.h"
#include "core/read_file.h"
#include "config/schema.h"
#include "data/tokenizer.h"
#include "data/unicode.h"
#include "dist/comm.h"

namespace sinklab::cli {

namespace {

struct TokenizeOptions {
    std::string tokenizer = "gpt2";
    std::string input;
    bool decode = false;
};

std::string read_all(const std::string& path) {
    std::ostringstream ss;
    if (path == "-") {
        ss << std::cin.rdbuf();
        return ss.str();
    }
    return read_whole_file(path, "give a text file, or - for standard input");
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& where) {
    std::vector<int32_t> ids;
    const char* p = text.data();
    const char* end = p + text.size();
    while (true) {
        while (p < end && std::isspace(static_cast<unsigned char>(*p))) ++p;
        if (p == end) break;
        const char* word_end = p;
        while (word_end < end && !std::isspace(static_cast<unsigned char>(*word_end))) ++word_end;
        int32_t id;
        const auto [next, ec] = std::from_chars(p, word_end, id);
        // Quoted clipped, its bytes outside printable ASCII escaped: a binary file (a .bin shard) cut the line at its
        // NUL.
        SL_REQUIRE(ec == std::errc() && next == word_end,
                   "{}: '{}' (item {}) is not a token id; --decode reads decimal ids separated by spaces, as tokenize "
                   "prints them (a .bin shard is binary: read it with numpy, see data/README.md)",
                   where, config::clipped(std::string(p, word_end), 40, true), ids.size() + 1);
        ids.push_back(id);
        p = word_end;
    }
    return ids;
}

void run(const TokenizeOptions& opt) {
    const std::string where = opt.input == "-" ? "standard input" : opt.input;
    const std::string text = read_all(opt.input);
    const auto tokenizer = make_tokenizer(opt.tokenizer);
    if (opt.decode) {
        const std::string out = tokenizer->decode(parse_ids(text, where));
        write_standard_output(out);
        return;
    }
    require_utf8(text, where);
    fmt::memory_buffer out;
    bool first = true;
    for (const int32_t id : tokenizer->encode(text)) {
        if (!first) out.push_back(' ');
        first = false;
        fmt::format_to(std::back_inserter(out), "{}", id);
    }
    out.push_back('\n');
    write_standard_output({out.data(), out.size()});
}

}  // namespace

void add_tokenize(CLI::App& app) {
    auto opt = std::make_shared<TokenizeOptions>();
    CLI::App* cmd = app.add_subcommand("tokenize", "print the token ids of a UTF-8 text (the whole input as one "
                                                   "document, space-separated), or decode ids back to text");
    cmd->add_option("--tokenizer", opt->tokenizer, "bytes | gpt2")->check(CLI::IsMember({"bytes", "gpt2"}))
        ->capture_default_str();
    cmd->add_flag("--decode", opt->decode, "read whitespace-separated ids and write the text they stand for");
    cmd->add_option("input", opt->input, "text file, or - for standard input")->required();
    cmd->callback([opt] {
        require_single_process("tokenize");
        run(*opt);
    });
}

}  // namespace sinklab::cli
