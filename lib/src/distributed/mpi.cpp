// mpi_world(): the Communicator over MPI_COMM_WORLD (compiled when CMake finds MPI).
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mcnn/distributed.hpp"
#include "mcnn/error.hpp"

namespace mcnn {
namespace {

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() {
    return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
    return MPI_DOUBLE;
}

// MPI counts are ints: larger buffers go in pieces of at most this many elements.
constexpr std::size_t max_count = std::size_t{1} << 28;

class MpiWorld final : public Communicator {
public:
    MpiWorld() {
        int initialised = 0;
        MPI_Initialized(&initialised);
        if (initialised) fail("mpi_world: MPI is initialised already (one mpi_world per process)");
        int provided = 0;
        // Only the thread that calls fit() makes MPI calls (OpenMP threads never do).
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
    }
    ~MpiWorld() override { MPI_Finalize(); }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    void allreduce_sum(float* data, std::size_t n, Reduction reduction) override { sum(data, n, reduction); }
    void allreduce_sum(double* data, std::size_t n, Reduction reduction) override { sum(data, n, reduction); }

    void allreduce_max(double* data, std::size_t n) override {
        for (std::size_t done = 0; done < n; done += max_count)
            MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(std::min(max_count, n - done)), MPI_DOUBLE, MPI_MAX,
                          MPI_COMM_WORLD);
    }

    void broadcast(std::string& bytes, int root) override {
        unsigned long long size = bytes.size();
        MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD);
        bytes.resize(size);
        for (std::size_t done = 0; done < size; done += max_count)
            MPI_Bcast(bytes.data() + done, static_cast<int>(std::min<std::size_t>(max_count, size - done)), MPI_CHAR, root,
                      MPI_COMM_WORLD);
    }

    [[noreturn]] void abort(const std::string& message) override {
        std::fprintf(stderr, "%s\n(rank %d of %d failed: ending every process of the job)\n", message.c_str(), rank_, size_);
        std::fflush(stderr);
        std::fflush(stdout);
        MPI_Abort(MPI_COMM_WORLD, 1);
        std::abort();  // MPI_Abort does not return; should it, no rank may go on
    }

private:
    template <class T>
    void sum(T* data, std::size_t n, Reduction reduction) {
        if (reduction == Reduction::fast) {
            for (std::size_t done = 0; done < n; done += max_count)
                MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(std::min(max_count, n - done)), mpi_type<T>(), MPI_SUM,
                              MPI_COMM_WORLD);
            return;
        }
        // ordered: every rank gathers every buffer, then adds them in rank order
        std::vector<T> all;
        for (std::size_t done = 0; done < n; done += max_count) {
            const std::size_t count = std::min(max_count, n - done);
            all.resize(count * static_cast<std::size_t>(size_));
            MPI_Allgather(data + done, static_cast<int>(count), mpi_type<T>(), all.data(), static_cast<int>(count), mpi_type<T>(),
                          MPI_COMM_WORLD);
            T* out = data + done;
            std::copy(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(count), out);
            for (int r = 1; r < size_; ++r) {
                const T* in = all.data() + static_cast<std::size_t>(r) * count;
                for (std::size_t i = 0; i < count; ++i) out[i] += in[i];
            }
        }
    }

    int rank_ = 0, size_ = 1;
};

}  // namespace

bool built_with_mpi() {
    return true;
}

std::unique_ptr<Communicator> mpi_world() {
    if (!launched_by_mpi()) return nullptr;
    return std::make_unique<MpiWorld>();
}

}  // namespace mcnn
