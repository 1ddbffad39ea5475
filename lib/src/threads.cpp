#include "mcnn/threads.hpp"

#include <unistd.h>

#include <cstdlib>

namespace mcnn {

bool openmp_wait_policy_chosen() { return std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT"); }

void use_default_openmp_wait_policy(char** argv) {
    if (openmp_wait_policy_chosen() || !argv || !argv[0]) return;
    // Set before the exec, so the new execution finds it chosen and does not exec again.
    if (setenv("OMP_WAIT_POLICY", default_openmp_wait_policy, 0) != 0) return;
    execv("/proc/self/exe", argv);
    // Only reached when the exec failed: this execution keeps the settings OpenMP loaded with.
}

}  // namespace mcnn
