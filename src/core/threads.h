// The most CPU threads a process may be asked for (run.threads, prepare --threads): far above any machine's cores,
// and far below the counts at which OpenMP crashes while starting them (100000 did).
#pragma once

namespace sinklab {

inline constexpr int kMaxThreads = 1024;

}  // namespace sinklab
