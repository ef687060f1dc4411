// Durable file writes with errors for people: plain POSIX calls, so that a full disk (ENOSPC), a file-size
// limit (EFBIG) or an I/O error surfaces at the failing call with the file's path, and fsync makes the bytes
// survive a crash of the machine before anything refers to them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/checksum.h"

namespace sinklab {

class FileWriter {
public:
    // Creates or truncates `path`.
    explicit FileWriter(std::string path);
    ~FileWriter();  // closes without syncing when finish() was not called (an error path)
    FileWriter(const FileWriter&) = delete;
    FileWriter& operator=(const FileWriter&) = delete;

    void write(const void* data, size_t n);
    // fsync + close; the file's bytes are on disk when this returns.
    void finish();

    const std::string& path() const { return path_; }
    uint64_t bytes() const { return bytes_; }
    const Checksum64& checksum() const { return checksum_; }  // of every byte written

private:
    std::string path_;
    int fd_ = -1;
    uint64_t bytes_ = 0;
    Checksum64 checksum_;
};

// Writes `text` to `path` durably (FileWriter) in one go.
void write_file_durably(const std::string& path, const std::string& text);
// Replaces `path` by a file holding `text`: written durably to a hidden temporary file beside it, then renamed over
// it, the rename made durable too. A failure (a full disk) leaves the earlier file whole, or none, never a cut one,
// and removes the temporary file.
void replace_file_durably(const std::string& path, const std::string& text);
// Removes the temporary files of replace_file_durably(path, ...) that a killed process left beside `path`. Only
// for a caller that holds the folder (its lock): another process may be writing one.
void remove_stale_replacements(const std::string& path);
// Standard output that cannot be written (a full disk) throws an Error with the reason: a command's printed result
// must not end cut short while the command reports success. A reader that went away (EPIPE: `| head`) wants
// nothing more, which is no failure.
void write_standard_output(std::string_view bytes);
// Flushes stdout, which exit() would do without a word, and throws as above when a write to it failed.
void flush_standard_output();
// fsync of a folder: makes the creation, rename or removal of its entries durable.
void sync_dir(const std::string& dir);

}  // namespace sinklab
