// Errors are for people: one line that names the file, key or value at fault and what to do.
// Every failure in sinklab throws sinklab::Error; main() prints its message and exits non-zero.
#pragma once
#include <fmt/format.h>

#include <exception>
#include <stdexcept>
#include <string>

namespace sinklab {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A failure of sinklab itself (a broken invariant), reported with the source location.
[[noreturn]] void fail_internal(const char* file, int line, const std::string& what);

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
    throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// The one line a failure reports, as main prints it and train.log ends with: an exception's message, where a
// file-system call that no check foresaw failed the path first, as in every other sinklab error.
std::string message_of(const std::exception_ptr& failure);

}  // namespace sinklab

// A user-facing check: the message must say what is wrong and what to do.
#define SL_REQUIRE(cond, ...)                  \
    do {                                       \
        if (!(cond)) ::sinklab::fail(__VA_ARGS__); \
    } while (0)

// An internal invariant (shapes handed between our own modules, library calls that must not fail).
#define SL_ASSERT(cond, ...)                                                                        \
    do {                                                                                            \
        if (!(cond)) ::sinklab::fail_internal(__FILE__, __LINE__, #cond ": " + fmt::format(__VA_ARGS__)); \
    } while (0)
