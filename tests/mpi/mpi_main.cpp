// main() of the test binaries that ctest runs under `mpiexec -n 2`: MPI is initialized (through the process's
// communicator) before any test, and finalized at exit.
#include <gtest/gtest.h>

#include "dist/comm.h"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    sinklab::process_communicator();
    return RUN_ALL_TESTS();
}
