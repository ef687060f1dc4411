// One allocation for many tensors: declare every tensor first, then allocate once. Memory stays constant
// for the whole run and its size is known before the run starts (sinklab info prints it).
#pragma once
#include <vector>

#include "backend/backend.h"

namespace sinklab {

class Arena {
public:
    Arena() = default;
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    ~Arena();

    // Reserves room for a tensor; *slot gets its data pointer at allocate().
    void add(Tensor* slot, DType dtype, std::initializer_list<int64_t> dims);
    size_t bytes() const { return bytes_; }
    // Allocates the whole arena on `backend` (zero-filled) and points every declared tensor into it.
    void allocate(Backend& backend);

private:
    static constexpr size_t kAlign = 256;  // keeps every tensor aligned for 16-byte vector loads
    struct Slot {
        Tensor* tensor;
        size_t offset;
    };
    std::vector<Slot> slots_;
    size_t bytes_ = 0;
    Backend* backend_ = nullptr;
    void* base_ = nullptr;
};

// Separate allocations, each released when their owner goes: also when the owner's constructor throws after some
// of them (out of memory at the next one), which a destructor of the owner would not see.
class Allocations {
public:
    explicit Allocations(Backend& backend) : backend_(backend) {}
    Allocations(const Allocations&) = delete;
    Allocations& operator=(const Allocations&) = delete;
    ~Allocations();

    // A zero-filled tensor of exactly its bytes.
    Tensor add(DType dtype, std::initializer_list<int64_t> dims);

private:
    Backend& backend_;
    std::vector<void*> held_;
};

}  // namespace sinklab
