#include "train/safetensors.h"


#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/file_writer.h"
#include "core/tensor.h"

namespace sinklab {

namespace {

// Headers beyond this are not ours and not sane (safetensors itself caps them at 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint64_t numel(const std::vector<int64_t>& shape) {
    uint64_t n = 1;
    for (int64_t d : shape) n *= uint64_t(d);
    return n;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
    static const std::map<std::string, size_t> sizes = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
        {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    auto it = sizes.find(dtype);
    return it == sizes.end() ? 0 : it->second;
}

size_t TensorSpec::bytes() const { return size_t(numel(shape)) * safetensors_dtype_size(dtype); }

struct SafetensorsWriter::Impl {
    FileWriter file;
    std::vector<TensorSpec> tensors;
    size_t next = 0;
    explicit Impl(const std::string& path) : file(path) {}
};

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<TensorSpec> tensors,
                                     const std::vector<std::pair<std::string, std::string>>& metadata)
    : impl_(std::make_unique<Impl>(path)) {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        nlohmann::ordered_json meta = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata) meta[k] = v;
        header["__metadata__"] = meta;
    }
    uint64_t offset = 0;
    for (const TensorSpec& t : tensors) {
        SL_ASSERT(safetensors_dtype_size(t.dtype) > 0, "safetensors dtype {} of {}", t.dtype, t.name);
        SL_ASSERT(!header.contains(t.name), "tensor {} twice in {}", t.name, path);
        header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes()}}};
        offset += t.bytes();
    }
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));
    impl_->file.write(len, 8);
    impl_->file.write(text.data(), text.size());
    impl_->tensors = std::move(tensors);
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write_next(const void* data) {
    SL_ASSERT(impl_->next < impl_->tensors.size(), "{}: more tensors written than declared", impl_->file.path());
    impl_->file.write(data, impl_->tensors[impl_->next++].bytes());
}

WrittenFile SafetensorsWriter::finish() {
    SL_ASSERT(impl_->next == impl_->tensors.size(), "{}: {} of {} tensors written", impl_->file.path(), impl_->next,
              impl_->tensors.size());
    impl_->file.finish();
    return {impl_->file.path(), impl_->file.bytes(), impl_->file.checksum().hex()};
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
    const size_t size = file_.size();
    SL_REQUIRE(size >= 8, "{} is not a safetensors file: {} bytes, shorter than the 8-byte header length (truncated?)",
               path, size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= uint64_t(static_cast<unsigned char>(file_.data()[i])) << (8 * i);
    SL_REQUIRE(n <= kMaxHeaderBytes && 8 + n <= size,
               "{} is not a valid safetensors file: its header claims {} bytes, the file has {} (truncated or "
               "corrupt)",
               path, n, size);
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(file_.data() + 8, file_.data() + 8 + n);
    } catch (const nlohmann::json::exception& e) {
        fail("{} is not a valid safetensors file: its header is not JSON ({})", path, e.what());
    }
    SL_REQUIRE(header.is_object(), "{} is not a valid safetensors file: its header is not a JSON object", path);
    const uint64_t data_bytes = size - 8 - n;
    const char* data = file_.data() + 8 + n;
    try {
        for (const auto& [name, entry] : header.items()) {
            if (name == "__metadata__") {
                for (const auto& [k, v] : entry.items()) metadata_[k] = v.get<std::string>();
                continue;
            }
            StoredTensor t;
            t.name = name;
            t.dtype = entry.at("dtype").get<std::string>();
            t.shape = entry.at("shape").get<std::vector<int64_t>>();
            const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
            const size_t elem = safetensors_dtype_size(t.dtype);
            SL_REQUIRE(elem > 0, "{}: tensor {} has the unknown dtype '{}'", path, name, t.dtype);
            for (int64_t d : t.shape)
                SL_REQUIRE(d >= 0, "{}: tensor {} has the shape {}", path, name, shape_str(t.shape));
            SL_REQUIRE(offsets.size() == 2 && offsets[0] <= offsets[1],
                       "{}: tensor {} has data_offsets that are not [begin, end]", path, name);
            uint64_t need = elem;  // bytes, where a shape's product could wrap around to any size
            for (int64_t d : t.shape)
                SL_REQUIRE(!__builtin_mul_overflow(need, uint64_t(d), &need),
                           "{}: tensor {} has the shape {}, 2^64 bytes of {} or more", path, name, shape_str(t.shape),
                           t.dtype);
            SL_REQUIRE(offsets[1] - offsets[0] == need, "{}: tensor {} spans {} bytes, but {} {} needs {}", path, name,
                       offsets[1] - offsets[0], t.dtype, shape_str(t.shape), need);
            SL_REQUIRE(offsets[1] <= data_bytes,
                       "{} is truncated: tensor {} ends at data byte {}, but the file holds {} data bytes", path, name,
                       offsets[1], data_bytes);
            t.data = data + offsets[0];
            t.bytes = offsets[1] - offsets[0];
            tensors_.push_back(std::move(t));
        }
    } catch (const nlohmann::json::exception& e) {
        fail("{} is not a valid safetensors file: {}", path, e.what());
    }
    std::sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) { return a.data < b.data; });
    uint64_t at = 0;
    for (const StoredTensor& t : tensors_) {
        SL_REQUIRE(uint64_t(t.data - data) == at, "{} is corrupt: tensor {} starts at data byte {}, expected {}", path,
                   t.name, t.data - data, at);
        at += t.bytes;
    }
    SL_REQUIRE(at == data_bytes, "{} is corrupt: its tensors cover {} data bytes, the file holds {}", path, at,
               data_bytes);
}

const StoredTensor* SafetensorsFile::find(const std::string& name) const {
    for (const StoredTensor& t : tensors_)
        if (t.name == name) return &t;
    return nullptr;
}

const StoredTensor& SafetensorsFile::get(const std::string& name, const std::string& dtype,
                                         const std::vector<int64_t>& shape) const {
    const StoredTensor* t = find(name);
    SL_REQUIRE(t, "{} has no tensor {}; it was written for another model (check the config)", path(), name);
    SL_REQUIRE(t->dtype == dtype && t->shape == shape, "{}: tensor {} is {} {}, the model needs {} {}; it was written "
               "for another model (check the config)", path(), name, t->dtype, shape_str(t->shape), dtype,
               shape_str(shape));
    return *t;
}

}  // namespace sinklab
