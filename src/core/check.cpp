#include "core/check.h"

#include <filesystem>
#include <new>

namespace sinklab {

void fail_internal(const char* file, int line, const std::string& what) {
    throw Error(fmt::format("internal error at {}:{}: {}", file, line, what));
}

std::string message_of(const std::exception_ptr& failure) {
    try {
        std::rethrow_exception(failure);
    } catch (const std::filesystem::filesystem_error& e) {
        // A path through a file, a link loop, a name too long: libstdc++'s "what it did: why" without its prefix.
        std::string what = e.what();
        const std::string prefix = "filesystem error: ", suffix = " [" + e.path1().string() + "]";
        if (what.starts_with(prefix)) what.erase(0, prefix.size());
        const size_t at = what.find(suffix);
        if (at != std::string::npos) what.erase(at);
        return fmt::format("{}: {}; check the path and the folders on it", e.path1().string(), what);
    } catch (const std::bad_alloc&) {  // what() is just "std::bad_alloc"
        return "out of host memory: an allocation failed (the machine's memory, or a limit such as ulimit -v, is "
               "too small for what this command holds: the model, its batch, the data); make it smaller, or run where "
               "there is more memory";
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "an unknown error";
    }
}

}  // namespace sinklab
