// Runs the sinklab binary the way a user does, for end-to-end tests.
#pragma once
#include <string>

#include "fs_util.h"

namespace sinklab::test {

// `args` is appended to the binary's path as is (quote what needs quoting).
inline CommandResult run_sinklab(const std::string& args) { return run_command(std::string(SINKLAB_BINARY) + " " + args); }

}  // namespace sinklab::test
