// The safetensors format (the Hugging Face one; any safetensors reader opens our files):
//   8 bytes      N, the header length, unsigned little-endian
//   N bytes      a UTF-8 JSON object: "__metadata__": {string: string} (optional) and, per tensor,
//                "name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}
//                padded with spaces so that the data starts 8-byte aligned
//   the data     every tensor's bytes, row-major little-endian, at [8 + N + begin, 8 + N + end); the tensors
//                tile the data exactly (no gaps, no overlaps), so the file size is 8 + N + the last end
// The reader maps the file and refuses, naming the file, anything that breaks these rules: a truncated file, a
// header that is not such JSON, a tensor whose bytes do not match its shape and dtype.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/mapped_file.h"

namespace sinklab {

// Bytes per element of a safetensors dtype name ("F32", "BF16", "I64", ...); 0 when unknown.
size_t safetensors_dtype_size(const std::string& dtype);

struct TensorSpec {
    std::string name;
    std::string dtype;  // safetensors name: F32, BF16, ...
    std::vector<int64_t> shape;
    size_t bytes() const;
};

// What a finished file is, for the checkpoint's manifest.
struct WrittenFile {
    std::string path;
    uint64_t bytes = 0;
    std::string checksum;  // Checksum64 of the whole file, hex
};

// Streams a file: the header first, then each tensor's bytes in the order the specs give.
class SafetensorsWriter {
public:
    SafetensorsWriter(const std::string& path, std::vector<TensorSpec> tensors,
                      const std::vector<std::pair<std::string, std::string>>& metadata);
    ~SafetensorsWriter();
    // The next tensor's bytes, all of them (tensors[i].bytes()).
    void write_next(const void* data);
    // Syncs and closes the file; every tensor must have been written.
    WrittenFile finish();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

struct StoredTensor {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    const char* data = nullptr;  // inside the mapped file
    size_t bytes = 0;
};

class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);  // maps and validates the whole layout
    const std::string& path() const { return file_.path(); }
    const std::vector<StoredTensor>& tensors() const { return tensors_; }  // in data order
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const StoredTensor* find(const std::string& name) const;
    // The tensor, checked to have this dtype and shape; an error naming the file otherwise.
    const StoredTensor& get(const std::string& name, const std::string& dtype,
                            const std::vector<int64_t>& shape) const;

private:
    MappedFile file_;
    std::vector<StoredTensor> tensors_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace sinklab
