#pragma once
// CIFAR-10 in the official binary layout: data_batch_1..5.bin (training), test_batch.bin,
// batches.meta.txt (class names, one a line). A file is a run of 3,073-byte records: one label
// byte (0-9), then 1,024 red, 1,024 green and 1,024 blue bytes, rows top to bottom.
//
// Flow: find_cifar10 -> load_cifar10 (uint8 records, validated) -> hold_out a validation split ->
// CifarDataset (normalised) -> BatchLoader (reshuffled every epoch from a seed) -> float batches,
// B x 3 x 32 x 32.
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "mcnn/data/dataset.hpp"

namespace mcnn::data {

constexpr int image_size = 32;
constexpr int image_bytes = 3 * image_size * image_size;  // 3,072
constexpr int record_bytes = 1 + image_bytes;             // 3,073
constexpr int class_count = 10;

/// Images as stored (channel-major uint8, image_bytes each) and their labels.
struct Records {
    std::vector<std::uint8_t> images;  // size() * image_bytes
    std::vector<std::uint8_t> labels;  // size(), each < class_count
    std::size_t size() const { return labels.size(); }
    /// Appends another dataset's records.
    void append(const Records& other);
    /// The records at `indices`, in that order.
    Records subset(const std::vector<std::size_t>& indices) const;
};

/// Records a CIFAR-10 batch file holds (each of data_batch_1..5.bin and test_batch.bin).
constexpr std::size_t records_per_file = 10000;

/// The records in `bytes`, the contents of a batch file called `name` (for messages): any positive
/// number of 3,073-byte records. Throws mcnn::Error naming it and what is wrong: empty, size not a
/// multiple of 3,073 bytes (giving the size and the remainder, the sign of a truncated download), a
/// label above 9 (giving the record index and its byte offset).
Records parse_records(std::string_view bytes, const std::string& name);

/// Reads one batch file of `records` records (CIFAR-10's hold 10,000; tests pass small counts).
/// Before anything is allocated or read, the file must be a regular file (not a FIFO, device or
/// folder) of exactly records x 3,073 bytes; else throws naming the file, its size and the size
/// expected. Then as parse_records.
Records read_batch_file(const std::filesystem::path& file, std::size_t records = records_per_file);

/// The whole data set from one folder.
struct Cifar10 {
    std::filesystem::path dir;
    Records train;                         // data_batch_1..5, in order (50,000 records)
    Records test;                          // test_batch (10,000 records)
    std::vector<std::string> class_names;  // from batches.meta.txt (10 names)
};

/// Loads every file of the folder, each batch file of `records_per_file` records (errors as
/// read_batch_file; batches.meta.txt must hold 10 non-empty names).
Cifar10 load_cifar10(const std::filesystem::path& dir, std::size_t records_per_file = data::records_per_file);

/// The folder holding CIFAR-10: `flag` if not empty, then $CIFAR10_DIR, then
/// ./data/cifar-10-batches-bin, then ../shared/cifar10/cifar-10-batches-bin (relative to the
/// working directory). A candidate counts when it holds test_batch.bin; a `flag` folder that does
/// not is an error (no silent fallback to another copy). When none does, the error lists every
/// place it looked and how to get the data (scripts/download-cifar10.sh).
std::filesystem::path find_cifar10(const std::string& flag = "");

/// The places find_cifar10 looks, in order, as absolute paths (for messages and --help). An unset
/// or empty $CIFAR10_DIR, and an empty flag, add no entry.
std::vector<std::filesystem::path> cifar10_search_path(const std::string& flag = "");

/// Per-channel (R, G, B) normalisation: x = (byte / 255 - mean[c]) / std[c].
struct Normalization {
    std::array<float, 3> mean{0.5f, 0.5f, 0.5f};
    std::array<float, 3> std{0.5f, 0.5f, 0.5f};
    /// The notebook's transform, Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)): values in [-1, 1].
    static Normalization notebook() { return {}; }
    /// Mean and standard deviation of each channel over `data` (for standardising).
    static Normalization of(const Records& data);
};

/// Splits `data` into a training part and a validation part of `validation_size` records, chosen
/// by a seeded shuffle (the same seed gives the same split). Throws when validation_size >= size.
/// The validation records come in shuffled order; the training records keep their original order
/// (the BatchLoader shuffles them anyway). The shuffle is a Fisher-Yates over std::mt19937_64 with
/// its own unbiased bounded draw (no std::uniform_int_distribution), so a seed gives the same split
/// with every compiler and standard library.
struct Split {
    Records train, validation;
};
Split hold_out(const Records& data, std::size_t validation_size, std::uint64_t seed);

/// Writes records [first, first + count) of `data` into `images` (count x 3 x 32 x 32, normalised)
/// and `labels`. Used by the loader and by evaluation.
/// `images` and `labels` are resized (their storage is reused, so a loop allocates nothing after
/// the first batch). Throws when [first, first + count) runs past `order` or an index past `data`.
void fill_batch(const Records& data, const std::vector<std::size_t>& order, std::size_t first, std::size_t count,
                const Normalization& norm, Tensor<float>& images, std::vector<int>& labels);
/// The same with records in stored order: records [first, first + count) of `data` (evaluation).
void fill_batch(const Records& data, std::size_t first, std::size_t count, const Normalization& norm,
                Tensor<float>& images, std::vector<int>& labels);

/// CIFAR-10 records as a Dataset: examples 3 x 32 x 32, normalised by `norm`, 10 classes.
class CifarDataset : public Dataset {
public:
    /// Throws when `norm` has a non-positive or non-finite std or a non-finite mean.
    CifarDataset(Records records, const Normalization& norm, std::vector<std::string> class_names = {});
    std::size_t size() const override { return records_.size(); }
    Shape example_shape() const override { return Shape{3, image_size, image_size}; }
    int classes() const override { return class_count; }
    std::vector<std::string> class_names() const override;
    void fill(const std::size_t* indices, std::size_t count, Tensor<float>& batch, std::vector<int>& labels) const override;
    const Records& records() const { return records_; }
    const Normalization& normalization() const { return norm_; }

private:
    Records records_;
    Normalization norm_;
    std::vector<std::string> names_;
};

}  // namespace mcnn::data
