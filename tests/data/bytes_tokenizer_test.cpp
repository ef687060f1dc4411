// The byte-level tokenizer: ids are the bytes, EOT = 256, any bytes round-trip.
#include <random>

#include "core/check.h"
#include "data/bytes_tokenizer.h"
#include "data_test_util.h"

namespace sinklab {
namespace {

TEST(BytesTokenizer, IdsAreTheBytes) {
    const auto tok = make_tokenizer("bytes");
    EXPECT_EQ(tok->encode("A\xc3\xa9\n"), (std::vector<int32_t>{65, 195, 169, 10}));
    EXPECT_EQ(tok->eot(), 256);
    EXPECT_EQ(tok->vocab_size(), 257);
    EXPECT_EQ(tok->name(), "bytes");
    EXPECT_EQ(tok->decode({104, 105, 256}), "hi<|endoftext|>");
    EXPECT_THROW(tok->decode({257}), Error);
    EXPECT_THROW(tok->decode({-1}), Error);
}

TEST(BytesTokenizer, AnyBytesRoundTrip) {
    const BytesTokenizer tok;
    std::mt19937 rng(5);
    for (int i = 0; i < 1000; ++i) {
        std::string s(rng() % 300, '\0');
        for (char& c : s) c = static_cast<char>(rng());
        const std::vector<int32_t> ids = tok.encode(s);
        ASSERT_EQ(ids.size(), s.size());
        ASSERT_EQ(tok.decode(ids), s);
    }
}

}  // namespace
}  // namespace sinklab
