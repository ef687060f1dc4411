// The one error line sinklab prints for an exception that ends a command (message_of).
#include <gtest/gtest.h>

#include <filesystem>
#include <new>

#include "core/check.h"

namespace sinklab {
namespace {

TEST(ErrorMessage, SaysWhatFailedAndWhatToDo) {
    const std::string memory = message_of(std::make_exception_ptr(std::bad_alloc()));
    EXPECT_TRUE(memory.starts_with("out of host memory: an allocation failed")) << memory;
    EXPECT_NE(memory.find("make it smaller, or run where there is more memory"), std::string::npos) << memory;

    const std::string file = message_of(std::make_exception_ptr(std::filesystem::filesystem_error(
        "cannot open", std::filesystem::path("/x/y"), std::make_error_code(std::errc::no_such_file_or_directory))));
    EXPECT_TRUE(file.starts_with("/x/y: cannot open: ")) << file;
    EXPECT_TRUE(file.ends_with("; check the path and the folders on it")) << file;

    EXPECT_EQ(message_of(std::make_exception_ptr(Error("as it was"))), "as it was");
    EXPECT_EQ(message_of(std::make_exception_ptr(42)), "an unknown error");
}

}  // namespace
}  // namespace sinklab
