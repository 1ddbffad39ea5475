#pragma once
// Data-parallel training: several processes (ranks) train one model, each computing the gradient
// of its share of every batch; the shares' gradients are summed before each optimiser step, so
// every rank holds the same weights at all times.
//
// A Communicator is the group of processes: its sums over ranks ("all-reduce") and a broadcast.
// mpi_world() gives MPI's (built when CMake finds MPI, mpirun starting the processes); fit() takes
// one in FitOptions::parallel. What fit does with it (see train/trainer.hpp):
//   - global batch b (FitOptions::batch), the same sequence of batches as one process: the loader
//     shuffles from the seed alone. It is cut into P = ranks x shards parts, part p holding rows
//     [p b / P, (p + 1) b / P); rank r computes parts r K .. r K + K - 1 (K = shards) one after
//     another, each its loss scaled by rows / b, so the parts' gradients sum to the batch mean's.
//   - the gradients, flattened into one buffer, are summed over the ranks (one all-reduce a step);
//   - batch norm in training mode sums its per-channel statistics over the ranks (sync batch norm);
//     dropout keys its mask by the row's place in the global batch; augmentation by the image's
//     index: the step does not depend on how the batch is split, up to float rounding.
//   - rank 0 alone writes the run folder and prints; the others receive its state at the start
//     (new or resumed run); evaluation is split across the ranks and summed.
//   - an exception on any rank ends the whole job (Communicator::abort), never a hang.
//
// Reduction::ordered makes the sum's rounding independent of the transport: the ranks' buffers are
// gathered and added in rank order, b0 + b1 + ... . One process computing K shards adds its
// shards' gradients the same way, so N processes with ordered reduction end with the same weights,
// bit for bit, as one process with --shards N (for models without batch norm: one process's
// shards each normalise with their own statistics, as gradient accumulation does).
#include <cstddef>
#include <memory>
#include <string>

namespace mcnn {

/// How an all-reduce sums: `fast`, the transport's own order (MPI_Allreduce: for 2 ranks the
/// same as ordered, since a + b = b + a; for more, its tree's order); `ordered`, b0 + b1 + ... in
/// rank order (an all-gather, then the sum: N times the memory and bytes of `fast`).
enum class Reduction { fast, ordered };
std::string reduction_name(Reduction r);        // "fast", "ordered"
Reduction reduction_from_name(const std::string& name);  // throws listing the names

/// A group of processes training together. Every call is collective: all ranks make it, in the
/// same order, with the same sizes.
class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    /// data[i] = the sum over ranks of data[i], on every rank.
    virtual void allreduce_sum(float* data, std::size_t n, Reduction reduction) = 0;
    virtual void allreduce_sum(double* data, std::size_t n, Reduction reduction) = 0;
    /// data[i] = the largest data[i] of any rank, on every rank.
    virtual void allreduce_max(double* data, std::size_t n) = 0;
    /// Rank `root`'s bytes, on every rank.
    virtual void broadcast(std::string& bytes, int root) = 0;
    /// Ends every process of the job: prints `message` to stderr (with the rank) and stops the
    /// others within seconds (MPI_Abort). Does not return.
    [[noreturn]] virtual void abort(const std::string& message) = 0;
};

/// What fit() does in parallel (FitOptions::parallel).
struct DataParallel {
    Communicator* comm = nullptr;  // null or size 1: this process alone
    Reduction reduction = Reduction::fast;
    /// Parts of its share of each batch a process computes one after another (gradient
    /// accumulation): K parts need the memory of one, and 1 process with K shards computes what K
    /// processes do (bit for bit with ordered reduction, models without batch norm).
    int shards = 1;
    int ranks() const { return comm ? comm->size() : 1; }
    int rank() const { return comm ? comm->rank() : 0; }
};

/// The communicator of the processes mpirun (or another MPI launcher) started, MPI initialised on
/// the first call; nullptr when this process was started alone (no launcher in its environment)
/// or ManualCNN was built without MPI. MPI is finalised when the returned object is destroyed.
std::unique_ptr<Communicator> mpi_world();
/// Whether ManualCNN was built with MPI (CMake found it and MCNN_MPI is on).
bool built_with_mpi();
/// Whether an MPI launcher started this process (its environment says so: OMPI_COMM_WORLD_SIZE,
/// PMI_SIZE or PMIX_RANK).
bool launched_by_mpi();

/// The part of a training step this process computes, for the ops whose result depends on the
/// other rows of the batch (batch norm's statistics) or on a row's place in it (dropout's mask).
/// fit() sets it around each part's forward and backward; outside fit it is the default: one
/// process, rows from 0, nothing to synchronise.
struct StepPart {
    Communicator* comm = nullptr;  // ranks to synchronise batch statistics with (null: none)
    Reduction reduction = Reduction::fast;
    std::size_t first_row = 0;     // the part's row 0 is this row of the global batch
    bool continues_step = false;   // a later shard of the same step in this process (dropout draws no new call)
};
const StepPart& current_step_part();

/// Sets current_step_part() while it lives (on this thread), then restores the previous one.
class StepPartScope {
public:
    explicit StepPartScope(const StepPart& part);
    ~StepPartScope();
    StepPartScope(const StepPartScope&) = delete;
    StepPartScope& operator=(const StepPartScope&) = delete;

private:
    StepPart saved_;
};

}  // namespace mcnn
