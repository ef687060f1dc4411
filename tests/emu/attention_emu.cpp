// kernels/cuda/attention.cu compiled as C++ against tests/emu/include, which comes first on the include path: its
// PTX wrappers (mma.cuh), launches (launch.cuh) and CUDA headers are the emulator's.
#include "kernels/cuda/attention.cu"
