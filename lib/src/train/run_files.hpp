#pragma once
// What a run folder's files must hold before fit() trusts them (used by trainer.cpp): a checkpoint
// checked tensor by tensor against the model and optimiser, its progress metadata against the run,
// and log.csv row by row.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/trainer.hpp"

namespace mcnn::run_files {

inline constexpr const char* checkpoint_format = "manualcnn-checkpoint/1";
/// Checkpoint metadata: a JSON list of the optimiser's state tensors that were empty (not started
/// yet) when saved, so not stored. A state tensor neither stored nor listed is missing.
inline constexpr const char* empty_state_key = "optimizer_state_empty";
inline const std::string csv_header = "kind,epoch,step,images,loss,accuracy,images_per_s,elapsed_s,lr";
/// The header of logs written before the lr column (read, never written).
inline const std::string csv_header_without_lr = "kind,epoch,step,images,loss,accuracy,images_per_s,elapsed_s";
inline constexpr std::uint64_t max_log_bytes = std::uint64_t(1) << 32;  // 4 GiB: tens of millions of rows

/// The checkpoint at `path`, read and checked as load_checkpoint says (trainer.hpp); changes nothing.
TensorFile checked_checkpoint(const std::filesystem::path& path, Module<float>& model, Optimizer<float>* optimizer,
                              const std::string& model_name);
/// The same checks of a checkpoint read already (rank 0's state sent to the other ranks); `path`
/// is what messages call it.
TensorFile checked_checkpoint(TensorFile file, const std::filesystem::path& path, Module<float>& model, Optimizer<float>* optimizer,
                              const std::string& model_name);
/// Puts the tensors of a checked checkpoint into the model's parameters (gradients zeroed), its buffers and,
/// when given, the optimiser's state (empty where the checkpoint lists it as empty).
void put_in_place(const TensorFile& file, Module<float>& model, Optimizer<float>* optimizer);

/// The training progress a checkpoint's metadata holds.
struct SavedProgress {
    int epochs_done = 0;
    long step = 0, images = 0;
    double train_seconds = 0;
};

/// The progress in `meta` of the checkpoint `ckpt`, read strictly and checked against the run of
/// options `o` with `batches` batches per epoch: epochs_done in [0, o.epochs]; step from epochs_done
/// to what those epochs hold (plus "batch_in_epoch" of a checkpoint written within an epoch); images
/// from step to step x batch; train_seconds finite and >= 0. Throws naming the field and the value.
SavedProgress saved_progress(const std::filesystem::path& ckpt, const std::map<std::string, std::string>& meta,
                             const FitOptions& o, std::size_t batches);

/// One row of log.csv (`line` without its line ending); `where` ("<file> line <n>") starts every
/// message, which names the column.
LogRow log_row(std::string_view line, const std::string& where, bool with_lr = true);

/// `text` with what cannot be seen written out: a carriage return as \r, a tab as \t, a backslash as
/// \\, other bytes outside printable ASCII as \xNN (a byte-order mark: \xef\xbb\xbf); cut after 300.
std::string escaped(std::string_view text);

}  // namespace mcnn::run_files
