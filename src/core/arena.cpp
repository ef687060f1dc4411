#include "core/arena.h"

namespace sinklab {

Arena::~Arena() {
    if (base_) backend_->release(base_);
}

void Arena::add(Tensor* slot, DType dtype, std::initializer_list<int64_t> dims) {
    SL_ASSERT(!base_, "arena already allocated");
    *slot = Tensor(nullptr, dtype, dims);
    slots_.push_back({slot, bytes_});
    bytes_ += (slot->bytes() + kAlign - 1) / kAlign * kAlign;
}

void Arena::allocate(Backend& backend) {
    SL_ASSERT(!base_, "arena already allocated");
    backend_ = &backend;
    base_ = backend.alloc(bytes_ ? bytes_ : kAlign);
    for (auto& s : slots_) s.tensor->data = static_cast<char*>(base_) + s.offset;
}

Allocations::~Allocations() {
    for (void* p : held_) backend_.release(p);
}

Tensor Allocations::add(DType dtype, std::initializer_list<int64_t> dims) {
    Tensor t(nullptr, dtype, dims);
    held_.reserve(held_.size() + 1);  // so that the push_back after a successful alloc cannot throw
    t.data = backend_.alloc(t.bytes());
    held_.push_back(t.data);
    return t;
}

}  // namespace sinklab
