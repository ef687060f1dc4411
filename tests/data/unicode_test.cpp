// UTF-8 decoding against an independent encoder; code point classes against node's regex classes and, where the
// installed copy is the table's version, against UnicodeData.txt read here independently of the generator.
#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "core/check.h"
#include "data/unicode.h"
#include "data_test_util.h"

namespace sinklab {
namespace {

std::string encode_utf8(char32_t cp) {  // the textbook bit layout, written separately from the decoder
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

TEST(Utf8, DecodesEveryScalarValue) {
    for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        const std::string s = encode_utf8(cp);
        char32_t got = 0;
        ASSERT_EQ(utf8_decode(s, 0, got), static_cast<int>(s.size())) << "U+" << std::hex << static_cast<uint32_t>(cp);
        ASSERT_EQ(static_cast<uint32_t>(got), static_cast<uint32_t>(cp));
        ASSERT_EQ(utf8_invalid_offset(s), std::string_view::npos);
    }
}

TEST(Utf8, RejectsInvalidSequencesAndSaysWhere) {
    const std::vector<std::string> invalid = {
        "\x80",              // lone continuation byte
        "\xC0\x80",          // overlong NUL
        "\xC1\xBF",          // overlong
        "\xE0\x80\x80",      // overlong
        "\xF0\x80\x80\x80",  // overlong
        "\xED\xA0\x80",      // surrogate U+D800
        "\xED\xBF\xBF",      // surrogate U+DFFF
        "\xF4\x90\x80\x80",  // U+110000
        "\xF8\x88\x80\x80\x80",
        "\xE2\x82",  // truncated
        "\xE2\x28\xA1",
        "\xFF",
        "\xFE"};
    for (const std::string& bad : invalid) {
        char32_t cp;
        EXPECT_EQ(utf8_decode(bad, 0, cp), 0) << "bytes " << testing::PrintToString(bad);
        EXPECT_EQ(utf8_invalid_offset("ab\xC3\xA9" + bad + "cd"), 4u);
        try {
            require_utf8("xyz" + bad, "some.txt", 100);
            ADD_FAILURE() << "no error for " << testing::PrintToString(bad);
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("some.txt: invalid UTF-8 at byte 103"), std::string::npos) << e.what();
        }
    }
}

TEST(CharClass, MatchesTheReferenceRegexClasses) {
    SKIP_WITHOUT_REFERENCE();
    // node's \p{L}, \p{N}, \s for every code point. node may know a newer Unicode version than our table
    // (generated from Debian's unicode-data): only code points that it assigns and we do not may differ.
    std::vector<char> ref(0x110000, 'O');
    for (const auto& r : test::reference("classes", nlohmann::json::array()))
        for (uint32_t cp = r[0]; cp <= r[1].get<uint32_t>(); ++cp) ref[cp] = r[2].get<std::string>()[0];
    int newer = 0, wrong = 0;
    for (char32_t cp = 0; cp < 0x110000; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        const CharClass c = char_class(cp);
        const char ours = c == CharClass::Letter   ? 'L'
                          : c == CharClass::Number ? 'N'
                          : c == CharClass::Space  ? 'S'
                                                   : 'O';
        if (ours == ref[cp]) continue;
        if (ours == 'O' && (ref[cp] == 'L' || ref[cp] == 'N')) {
            ++newer;
        } else if (++wrong < 10) {
            ADD_FAILURE() << "U+" << std::hex << static_cast<uint32_t>(cp) << ": ours " << ours << ", node " << ref[cp];
        }
    }
    EXPECT_EQ(wrong, 0);
    // Unicode 15.1 - 17.0 added about 11,000 letters and numbers; a broken table would differ by far more.
    EXPECT_LT(newer, 15000);
    EXPECT_GT(std::count(ref.begin(), ref.end(), 'L'), 130000);  // the reference really classified
}

TEST(CharClass, MatchesUnicodeDataOfTheTablesVersion) {
    const std::string data = "/usr/share/unicode/UnicodeData.txt";
    std::ifstream readme("/usr/share/unicode/ReadMe.txt");
    if (!readme) GTEST_SKIP() << "no " << data << " (Debian package unicode-data) to compare with";
    std::smatch m;
    const std::string readme_text = test::read_file("/usr/share/unicode/ReadMe.txt");
    const std::string table_head = test::read_file(std::string(SINKLAB_SOURCE_DIR) + "/src/data/unicode_table.inc");
    const std::regex version(R"(Unicode (\d+\.\d+\.\d+))"), readme_version(R"(Version (\d+\.\d+\.\d+))");
    ASSERT_TRUE(std::regex_search(table_head, m, version));
    const std::string table_version = m[1];
    ASSERT_TRUE(std::regex_search(readme_text, m, readme_version));
    if (m[1] != table_version)
        GTEST_SKIP() << "installed UnicodeData.txt is " << m[1] << ", the table is " << table_version;

    std::vector<char> cat(0x110000, 'C');  // first letter of the general category; unassigned = Cn
    std::ifstream in(data);
    std::string line;
    uint32_t range_first = 0;
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        std::stringstream ss(line);
        for (std::string x; std::getline(ss, x, ';');) f.push_back(x);
        const uint32_t cp = std::stoul(f[0], nullptr, 16);
        if (f[1].find(", First>") != std::string::npos) {
            range_first = cp;
            continue;
        }
        const uint32_t first = f[1].find(", Last>") != std::string::npos ? range_first : cp;
        for (uint32_t c = first; c <= cp; ++c) cat[c] = f[2] == "Zs" ? 'Z' : f[2][0];
    }
    const std::set<uint32_t> js_space = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x2028, 0x2029, 0xFEFF};
    for (uint32_t cp = 0; cp < 0x110000; ++cp) {
        const CharClass want = cat[cp] == 'L'                              ? CharClass::Letter
                               : cat[cp] == 'N'                            ? CharClass::Number
                               : cat[cp] == 'Z' || js_space.count(cp) > 0 ? CharClass::Space
                                                                          : CharClass::Other;
        ASSERT_EQ(char_class(cp), want) << "U+" << std::hex << static_cast<uint32_t>(cp);
    }
}

}  // namespace
}  // namespace sinklab
