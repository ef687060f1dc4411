// Whole-file reads of the small files sinklab is given by path (configs, suites, the GPT-2 vocabulary, text to
// tokenize): a failure is an error naming the file and the system's reason, never an empty or partial text.
#pragma once
#include <string>

namespace sinklab {

// The bytes of `path`, read to its end (a FIFO too). A folder, which opens and reads as empty, and a failed open or
// read throw sinklab::Error: "{path} is a folder; {advice}", "cannot read {path}: {reason}; {advice}".
std::string read_whole_file(const std::string& path, const std::string& advice);

}  // namespace sinklab
