// The parts of distributed.hpp that need no MPI: names, the step part, and mpi_world() when
// ManualCNN is built without MPI (mpi.cpp defines it otherwise).
#include "mcnn/distributed.hpp"

#include <cstdlib>

#include "mcnn/error.hpp"

namespace mcnn {

std::string reduction_name(Reduction r) {
    return r == Reduction::ordered ? "ordered" : "fast";
}

Reduction reduction_from_name(const std::string& name) {
    for (Reduction r : {Reduction::fast, Reduction::ordered})
        if (reduction_name(r) == name) return r;
    fail("unknown reduction '{}'; known: fast, ordered", name);
}

bool launched_by_mpi() {
    for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
        if (std::getenv(variable)) return true;
    return false;
}

namespace {
thread_local StepPart current_part;
}  // namespace

const StepPart& current_step_part() {
    return current_part;
}

StepPartScope::StepPartScope(const StepPart& part) : saved_(current_part) {
    current_part = part;
}

StepPartScope::~StepPartScope() {
    current_part = saved_;
}

#ifndef MCNN_HAVE_MPI
bool built_with_mpi() {
    return false;
}

std::unique_ptr<Communicator> mpi_world() {
    return nullptr;
}
#endif

}  // namespace mcnn
