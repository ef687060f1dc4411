// kernels/cuda/attention_f32.cu compiled as C++ against tests/emu/include (see attention_emu.cpp).
#include "kernels/cuda/attention_f32.cu"
