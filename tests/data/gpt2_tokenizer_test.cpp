// The GPT-2 tokenizer against the reference package run under node (pieces of the pre-tokenizer, token ids on
// varied text and on thousands of corpus documents), round trips, and bad vocabularies.
#include <random>
#include <thread>

#include "core/check.h"
#include "data/gpt2_split.h"
#include "data/gpt2_tokenizer.h"
#include "data_test_util.h"

namespace sinklab {
namespace {

const std::vector<std::string> kHandWritten = {
    "Hello world! The quick brown fox.",
    "I'm, you're, they've, we'll, she'd, it's, don't; I'M YOU'RE THEY'VE 'tis ''s x'sy",
    "Numbers: 3.14159, 1,000,000 and 42nd 2023-11-28 0x1F 1e-9 ½ Ⅻ ٣٤ ²³",
    "Runs of   spaces,\t\ttabs\n\n\nand newlines \n \n\r\n end",
    "   leading and trailing   ",
    "\n\n\n",
    "Ünïcödé ñ 日本語のテキスト 中文 한국어 Ελληνικά русский עברית العربية हिन्दी",
    "Emoji 😀🎉👍🏽👨‍👩‍👧 and ❤️ 🇩🇪",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    std::string(3000, 'a'),
    [] {
        std::string s;
        for (int i = 0; i < 700; ++i) s += "ab1!";
        return s;
    }(),
    "<|endoftext|> is plain text here, as in the reference: x<|endoftext|>y",
    "for (int i = 0; i < n; ++i) { x[i] += y[i] * 2; }  // comment\n\treturn 0;",
    "https://example.com/path?q=1&r=2#frag and a.b@c.de",
    "Quotes “curly” ‘single’ «guillemets» — em dash – en dash … ¿¡",
    "Spaces:\u00a0nbsp\u3000ideographic\u2028line\u2029para\ufeffbom\u0085nel\u200bzwsp",
    "",
    " ",
    "'",
    "\t",
};

// Random strings over pieces that exercise every branch of the pre-tokenizer.
std::vector<std::string> random_texts(int count, uint32_t seed) {
    static const std::vector<std::string> alphabet = {
        "a", "b", "Z", "é", "ß", "Ω", "中", "文", "ア", "٣", "5", "0", "½", "Ⅻ", " ", "  ", "\n", "\t", "\r\n", "'",
        "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "’", "!", "?", ".", ",", "-", "_", "😀", "👍🏽",
        "\u00a0", "\u3000", "\u2028", "\ufeff", "\u0085", "\u200b", "<|endoftext|>", "$", "€", "\"", "(", ")"};
    std::mt19937 rng(seed);
    std::vector<std::string> out;
    for (int i = 0; i < count; ++i) {
        std::string s;
        const int n = 1 + rng() % 30;
        for (int k = 0; k < n; ++k) s += alphabet[rng() % alphabet.size()];
        out.push_back(s);
    }
    return out;
}

std::vector<std::vector<int32_t>> encode_all(const Tokenizer& tok, const std::vector<std::string>& texts) {
    std::vector<std::vector<int32_t>> out;
    for (const auto& t : texts) out.push_back(tok.encode(t));
    return out;
}

void expect_same_encodings(const Tokenizer& tok, const std::vector<std::string>& texts) {
    const nlohmann::json ref = test::reference("encode", texts);
    ASSERT_EQ(ref.size(), texts.size());
    int mismatches = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
        const std::vector<int32_t> want = ref[i].get<std::vector<int32_t>>();
        const std::vector<int32_t> got = tok.encode(texts[i]);
        if (got != want && ++mismatches <= 5)
            ADD_FAILURE() << "text " << i << " " << testing::PrintToString(texts[i].substr(0, 200)) << "\n  ours "
                          << testing::PrintToString(got) << "\n  ref  " << testing::PrintToString(want);
    }
    EXPECT_EQ(mismatches, 0) << "of " << texts.size() << " texts";
}

TEST(Gpt2Split, MatchesThePackagesRegex) {
    SKIP_WITHOUT_REFERENCE();
    std::vector<std::string> texts = kHandWritten;
    for (const auto& t : random_texts(3000, 7)) texts.push_back(t);
    const nlohmann::json ref = test::reference("split", texts);
    std::vector<std::string_view> pieces;
    for (size_t i = 0; i < texts.size(); ++i) {
        gpt2_split(texts[i], pieces);
        const std::vector<std::string> got(pieces.begin(), pieces.end());
        ASSERT_EQ(got, ref[i].get<std::vector<std::string>>()) << "text " << testing::PrintToString(texts[i]);
    }
}

TEST(Gpt2Split, PiecesCoverInvalidUtf8Exactly) {
    std::mt19937 rng(3);
    std::vector<std::string_view> pieces;
    for (int i = 0; i < 2000; ++i) {
        std::string s(rng() % 64, '\0');
        for (char& c : s) c = static_cast<char>(rng());
        gpt2_split(s, pieces);
        std::string joined;
        for (auto p : pieces) {
            ASSERT_FALSE(p.empty());
            joined += p;
        }
        ASSERT_EQ(joined, s);
    }
}

TEST(Gpt2Tokenizer, EnvironmentSample) {
    SKIP_WITHOUT_VOCAB();
    const Gpt2Tokenizer tok(test::gpt2_dir());
    // ENVIRONMENT.md: node + gpt-3-encoder on this sentence.
    EXPECT_EQ(tok.encode("Hello world! The quick brown fox."),
              (std::vector<int32_t>{15496, 995, 0, 383, 2068, 7586, 21831, 13}));
    EXPECT_EQ(tok.vocab_size(), 50257);
    EXPECT_EQ(tok.eot(), 50256);
    EXPECT_EQ(tok.decode({50256}), "<|endoftext|>");
}

TEST(Gpt2Tokenizer, MatchesReferenceOnVariedText) {
    SKIP_WITHOUT_REFERENCE();
    const Gpt2Tokenizer tok(test::gpt2_dir());
    std::vector<std::string> texts = kHandWritten;
    for (const auto& t : random_texts(2000, 11)) texts.push_back(t);
    expect_same_encodings(tok, texts);
}

TEST(Gpt2Tokenizer, MatchesReferenceOnCorpusDocuments) {
    SKIP_WITHOUT_REFERENCE();
    const std::string corpus = test::cache_root() + "/corpus/corpus.jsonl";
    if (!std::filesystem::exists(corpus)) GTEST_SKIP() << "no " << corpus << ": run data/fetch_corpus.sh (CI does)";
    // Every fourth document; the long ones (whole Bible books) go in by paragraphs, because the reference package
    // slows down quadratically with a text's token count.
    std::vector<std::string> texts;
    size_t documents = 0, bytes = 0;
    std::ifstream in(corpus);
    std::string line;
    for (size_t i = 0; std::getline(in, line); ++i) {
        if (i % 4) continue;
        const std::string text = nlohmann::json::parse(line)["text"];
        ++documents;
        bytes += text.size();
        if (text.size() <= 30000) {
            texts.push_back(text);
            continue;
        }
        for (size_t at = 0; at < text.size();) {
            const size_t end = std::min(text.find("\n\n", at + 20000), text.size());
            texts.push_back(text.substr(at, end - at));
            at = end;
        }
    }
    ASSERT_GE(documents, 3000u);
    RecordProperty("documents", static_cast<int>(documents));
    RecordProperty("bytes", static_cast<int>(bytes));
    const Gpt2Tokenizer tok(test::gpt2_dir());
    expect_same_encodings(tok, texts);
}

TEST(Gpt2Tokenizer, DecodeInvertsEncodeOnAnyBytes) {
    SKIP_WITHOUT_VOCAB();
    const Gpt2Tokenizer gpt2(test::gpt2_dir());
    std::mt19937 rng(5);
    for (int i = 0; i < 3000; ++i) {
        std::string s(rng() % 300, '\0');
        for (char& c : s) c = static_cast<char>(rng());
        ASSERT_EQ(gpt2.decode(gpt2.encode(s)), s);
    }
    for (const auto& t : random_texts(500, 13)) ASSERT_EQ(gpt2.decode(gpt2.encode(t)), t);
}

TEST(Gpt2Tokenizer, SameIdsOnManyThreads) {
    SKIP_WITHOUT_VOCAB();
    const Gpt2Tokenizer tok(test::gpt2_dir());
    const std::vector<std::string> texts = random_texts(400, 17);
    const auto want = encode_all(tok, texts);
    std::vector<std::vector<std::vector<int32_t>>> got(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { got[t] = encode_all(tok, texts); });
    for (auto& t : threads) t.join();
    for (const auto& g : got) EXPECT_EQ(g, want);
}

TEST(Gpt2Tokenizer, DecodeRejectsUnknownIds) {
    SKIP_WITHOUT_VOCAB();
    const Gpt2Tokenizer tok(test::gpt2_dir());
    EXPECT_THROW(tok.decode({50257}), Error);
    EXPECT_THROW(tok.decode({-1}), Error);
}

TEST(Gpt2Tokenizer, MissingVocabularySaysHowToFetchIt) {
    test::TempDir dir;
    test::ScopedEnv env("SINKLAB_CACHE", dir.path());
    try {
        make_tokenizer("gpt2");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("data/fetch_gpt2_vocab.sh"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(dir.path() + "/gpt2"), std::string::npos) << e.what();
    }
    EXPECT_THROW(make_tokenizer("sentencepiece"), Error);
    EXPECT_EQ(make_tokenizer("bytes")->vocab_size(), 257);
}

TEST(Gpt2Tokenizer, BrokenVocabularyFilesAreNamed) {
    SKIP_WITHOUT_VOCAB();
    test::TempDir dir;
    const std::string encoder = test::read_file(test::gpt2_dir() + "/encoder.json");
    const std::string merges = test::read_file(test::gpt2_dir() + "/vocab.bpe");
    const auto expect_error = [&](const std::string& enc, const std::string& bpe, const std::string& needle) {
        test::write_file(dir / "encoder.json", enc);
        test::write_file(dir / "vocab.bpe", bpe);
        try {
            Gpt2Tokenizer tok(dir.path());
            ADD_FAILURE() << "no error, expected one with " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    expect_error(encoder.substr(0, encoder.size() / 2), merges, dir / "encoder.json");
    expect_error("{\"a\": 0}", merges, dir / "encoder.json");
    expect_error(encoder, merges + "Ġt hisisnotatoken\n", dir / "vocab.bpe" + ":50002");
    expect_error(encoder, "#version: 0.2\nthree parts here\n", dir / "vocab.bpe" + ":2");
}

}  // namespace
}  // namespace sinklab
