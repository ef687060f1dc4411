// A whole file mapped read-only into memory (the OS pages it in on demand and shares it between processes).
// A file that shrinks while mapped (truncated, or rewritten in place by cp) faults with SIGBUS on the next read past
// its new end, as does a page its storage fails to read; the process then exits 1 with one line naming the file,
// where it died of "Bus error" before. (A file rewritten in place at its size or larger is read as it now is.)
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sinklab {

// While one lives, the one-line error of a failed read of a mapped file (above) also ends the file at `path` (a run's
// train.log), as "error: ...". One at a time.
class MappedReadFailureLog {
public:
    explicit MappedReadFailureLog(const std::string& path);  // a file that cannot be opened gets no copy
    ~MappedReadFailureLog();
    MappedReadFailureLog(const MappedReadFailureLog&) = delete;
    MappedReadFailureLog& operator=(const MappedReadFailureLog&) = delete;

private:
    int fd_ = -1;
};

class MappedFile {
public:
    explicit MappedFile(const std::string& path);  // an error naming the file where it cannot be opened
    ~MappedFile();
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&&) = delete;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const char* data() const { return data_; }
    size_t size() const { return size_; }
    std::string_view view() const { return {data_, size_}; }
    const std::string& path() const { return path_; }
    // The file as it was opened (device, inode, size and modification time): equal in two processes of one
    // machine that map the very same file, unchanged since.
    uint64_t identity() const { return identity_; }

private:
    std::string path_;
    uint64_t identity_ = 0;
    const char* data_ = nullptr;
    size_t size_ = 0;
    int slot_ = -1;  // in the table of mappings the SIGBUS handler reads; -1: not in it
};

}  // namespace sinklab
