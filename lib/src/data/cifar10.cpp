#include "mcnn/data/cifar10.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <system_error>
#include <utility>

#include "../util/files.hpp"
#include "mcnn/error.hpp"
#include "shuffle.hpp"

namespace mcnn::data {

namespace fs = std::filesystem;

namespace {

// ---- files ---------------------------------------------------------------------------------------

std::vector<std::string> read_class_names(const fs::path& file) {
    // The official file has 61 bytes; a limit keeps a wrong file from being read whole.
    const std::string bytes = files::read_regular_file(file, "CIFAR-10 class-name file", 64 * 1024);
    std::vector<std::string> names;
    std::size_t start = 0;
    while (start <= bytes.size()) {
        std::size_t end = start;
        while (end < bytes.size() && bytes[end] != '\n') ++end;
        std::string line(bytes.begin() + static_cast<std::ptrdiff_t>(start), bytes.begin() + static_cast<std::ptrdiff_t>(end));
        // Trim spaces, tabs and the '\r' of Windows line ends; blank lines (the official file ends
        // with some) are skipped.
        const auto first = line.find_first_not_of(" \t\r");
        if (first != std::string::npos) {
            const auto last = line.find_last_not_of(" \t\r");
            names.push_back(line.substr(first, last - first + 1));
        }
        start = end + 1;
    }
    if (names.size() != static_cast<std::size_t>(class_count))
        fail("CIFAR-10 class-name file '{}': expected {} class names (one a line, blank lines ignored), found {}",
             file.string(), class_count, names.size());
    return names;
}

fs::path absolute_path(const fs::path& p) {
    std::error_code ec;
    auto out = fs::weakly_canonical(fs::absolute(p, ec), ec);
    if (ec) out = fs::absolute(p, ec).lexically_normal();
    return out;
}

struct Place {
    fs::path path;
    const char* source;
};

std::vector<Place> search_places(const std::string& flag) {
    std::vector<Place> places;
    if (!flag.empty()) places.push_back({absolute_path(flag), "--data"});
    if (const char* env = std::getenv("CIFAR10_DIR"); env != nullptr && *env != '\0')
        places.push_back({absolute_path(env), "$CIFAR10_DIR"});
    places.push_back({absolute_path(fs::path("data") / "cifar-10-batches-bin"), "./data"});
    places.push_back({absolute_path(fs::path("..") / "shared" / "cifar10" / "cifar-10-batches-bin"), "../shared"});
    return places;
}

/// A lookup table per channel: value[c][byte] = (byte / 255 - mean[c]) / std[c], computed in double.
struct Lut {
    std::array<std::array<float, 256>, 3> value;
    explicit Lut(const Normalization& norm) {
        for (int c = 0; c < 3; ++c) {
            if (!(norm.std[c] > 0.0f) || !std::isfinite(norm.std[c]) || !std::isfinite(norm.mean[c]))
                fail("CIFAR-10 normalisation: channel {} has mean {} and std {}; the std must be positive and both finite",
                     c, norm.mean[c], norm.std[c]);
            for (int b = 0; b < 256; ++b)
                value[c][b] = static_cast<float>((b / 255.0 - static_cast<double>(norm.mean[c])) /
                                                 static_cast<double>(norm.std[c]));
        }
    }
};

/// Records indices[0..count) of `data`, or first..first + count when `indices` is null (checked by
/// the callers), into `images` and `labels`, reusing their storage.
void fill_records(const Records& data, const std::size_t* indices, std::size_t first, std::size_t count,
                  const Normalization& norm, Tensor<float>& images, std::vector<int>& labels) {
    const Lut lut(norm);
    images.resize(Shape{static_cast<int>(count), 3, image_size, image_size});
    labels.resize(count);
    constexpr int plane = image_size * image_size;
    float* out = images.data();
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t r = indices ? indices[i] : first + i;
        const std::uint8_t* in = data.images.data() + r * image_bytes;
        for (int c = 0; c < 3; ++c) {
            const float* table = lut.value[c].data();
            for (int k = 0; k < plane; ++k) out[k] = table[in[k]];
            in += plane;
            out += plane;
        }
        labels[i] = data.labels[r];
    }
}

}  // namespace

// ---- Records -------------------------------------------------------------------------------------

void Records::append(const Records& other) {
    images.insert(images.end(), other.images.begin(), other.images.end());
    labels.insert(labels.end(), other.labels.begin(), other.labels.end());
}

Records Records::subset(const std::vector<std::size_t>& indices) const {
    Records out;
    out.images.resize(indices.size() * image_bytes);
    out.labels.resize(indices.size());
    for (std::size_t i = 0; i < indices.size(); ++i) {
        const std::size_t r = indices[i];
        if (r >= size()) fail("Records::subset: index {} (position {}) is out of range for {} records", r, i, size());
        std::memcpy(out.images.data() + i * image_bytes, images.data() + r * image_bytes, image_bytes);
        out.labels[i] = labels[r];
    }
    return out;
}

// ---- reading -------------------------------------------------------------------------------------

Records parse_records(std::string_view bytes, const std::string& name) {
    const std::size_t size = bytes.size();
    if (size == 0)
        fail("CIFAR-10 batch file '{}' is empty (0 bytes); expected a multiple of {} bytes (one record is a label "
             "byte and {} pixel bytes). The download was probably interrupted",
             name, record_bytes, image_bytes);
    if (size % record_bytes != 0)
        fail("CIFAR-10 batch file '{}' has {} bytes, not a multiple of the {}-byte record: {} whole records and {} "
             "bytes left over. The file is probably truncated (an interrupted download) or not a CIFAR-10 binary "
             "batch file",
             name, size, record_bytes, size / record_bytes, size % record_bytes);
    const std::size_t n = size / record_bytes;
    const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
    Records out;
    out.labels.resize(n);
    out.images.resize(n * image_bytes);
    for (std::size_t r = 0; r < n; ++r) {
        const std::uint8_t* rec = data + r * record_bytes;
        if (rec[0] >= class_count)
            fail("CIFAR-10 batch file '{}': record {} (byte offset {}) has label {}; expected 0 to {}. The file is "
                 "damaged or not a CIFAR-10 binary batch file (CIFAR-100 files have two label bytes)",
                 name, r, r * record_bytes, int{rec[0]}, class_count - 1);
        out.labels[r] = rec[0];
        std::memcpy(out.images.data() + r * image_bytes, rec + 1, image_bytes);
    }
    return out;
}

namespace {

/// What is wrong with a batch file of `size` bytes that should hold `records` records.
std::string wrong_size(const fs::path& file, std::uint64_t size, std::size_t records) {
    const std::uint64_t expected = std::uint64_t{records} * record_bytes, whole = size / record_bytes;
    std::string why;
    if (size == 0)
        why = "It is empty: the download was probably interrupted";
    else if (size % record_bytes != 0)
        why = fmt::format("It holds {} whole records and {} bytes left over: it is probably truncated (an interrupted "
                          "download) or not a CIFAR-10 binary batch file",
                          whole, size % record_bytes);
    else if (whole < records)
        why = fmt::format("It holds {} whole records: it is probably truncated (an interrupted download)", whole);
    else
        why = fmt::format("It holds {} records, {} more: it is not a CIFAR-10 batch file", whole, whole - records);
    return fmt::format("CIFAR-10 batch file '{}' has {} bytes, but a batch file holds {} records of {} bytes (a label "
                       "byte and {} pixel bytes): {} bytes. {}",
                       file.string(), size, records, record_bytes, image_bytes, expected, why);
}

}  // namespace

Records read_batch_file(const fs::path& file, std::size_t records) {
    // Size first: a file of another size is refused before anything is allocated or read.
    const std::uint64_t size = files::regular_file_size(file, "CIFAR-10 batch file");
    if (records == 0 || size != std::uint64_t{records} * record_bytes) fail("{}", wrong_size(file, size, records));
    const std::string bytes = files::read_regular_file(file, "CIFAR-10 batch file", size);
    return parse_records(bytes, file.string());
}

Cifar10 load_cifar10(const fs::path& dir, std::size_t records_per_file) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        fail("CIFAR-10 folder '{}' does not exist or is not a folder", dir.string());
    Cifar10 out;
    out.dir = dir;
    out.class_names = read_class_names(dir / "batches.meta.txt");
    for (int b = 1; b <= 5; ++b) {
        Records part = read_batch_file(dir / fmt::format("data_batch_{}.bin", b), records_per_file);
        if (b == 1) {
            out.train = std::move(part);
            out.train.images.reserve(out.train.images.size() * 5);
            out.train.labels.reserve(out.train.labels.size() * 5);
        } else {
            out.train.append(part);
        }
    }
    out.test = read_batch_file(dir / "test_batch.bin", records_per_file);
    return out;
}

// ---- finding the folder --------------------------------------------------------------------------

std::vector<fs::path> cifar10_search_path(const std::string& flag) {
    std::vector<fs::path> out;
    for (const auto& p : search_places(flag)) out.push_back(p.path);
    return out;
}

fs::path find_cifar10(const std::string& flag) {
    const auto places = search_places(flag);
    if (!flag.empty()) {  // a folder named explicitly must hold the data: no silent fallback to another copy
        std::error_code ec;
        if (fs::is_regular_file(places.front().path / "test_batch.bin", ec)) return places.front().path;
        fail("--data {}: no CIFAR-10 binary files there (test_batch.bin is missing). Run "
             "scripts/download-cifar10.sh to get them, or point --data at the folder holding data_batch_1.bin ... "
             "test_batch.bin",
             places.front().path.string());
    }
    for (const auto& p : places) {
        std::error_code ec;
        if (fs::is_regular_file(p.path / "test_batch.bin", ec)) return p.path;
    }
    std::string list;
    for (std::size_t i = 0; i < places.size(); ++i)
        list += fmt::format("\n  {}. {}  ({})", i + 1, places[i].path.string(), places[i].source);
    const char* env = std::getenv("CIFAR10_DIR");
    const bool env_set = env != nullptr && *env != '\0';
    fail("CIFAR-10 not found: none of these folders holds test_batch.bin:{}{}\n"
         "To get the data, run scripts/download-cifar10.sh (downloads the official archive into ./data), "
         "or pass --data DIR or set CIFAR10_DIR to a folder holding the CIFAR-10 binary files "
         "(data_batch_1.bin ... test_batch.bin, batches.meta.txt).",
         list, env_set ? "" : "\n  ($CIFAR10_DIR is not set)");
}

// ---- normalisation and splits --------------------------------------------------------------------

Normalization Normalization::of(const Records& data) {
    const std::size_t n = data.size();
    if (n == 0) fail("Normalization::of: the dataset is empty");
    if (data.images.size() != n * image_bytes)
        fail("Normalization::of: the dataset holds {} labels but {} image bytes (expected {})", n, data.images.size(),
             n * image_bytes);
    constexpr int plane = image_size * image_size;
    // Integer sums are exact (a plane's sum of squares fits 32 bits, the total 64 bits), so the only
    // rounding is the final division in double.
    std::array<std::uint64_t, 3> sum{}, sum_sq{};
    for (std::size_t r = 0; r < n; ++r) {
        const std::uint8_t* img = data.images.data() + r * image_bytes;
        for (int c = 0; c < 3; ++c) {
            std::uint32_t s = 0, q = 0;
            for (int k = 0; k < plane; ++k) {
                const std::uint32_t v = img[c * plane + k];
                s += v;
                q += v * v;
            }
            sum[c] += s;
            sum_sq[c] += q;
        }
    }
    Normalization out;
    const double count = static_cast<double>(n) * plane;
    for (int c = 0; c < 3; ++c) {
        const double mean = static_cast<double>(sum[c]) / count / 255.0;
        const double mean_sq = static_cast<double>(sum_sq[c]) / count / (255.0 * 255.0);
        const double var = std::max(0.0, mean_sq - mean * mean);  // population variance, as torchvision's recipes
        out.mean[c] = static_cast<float>(mean);
        out.std[c] = static_cast<float>(std::sqrt(var));
        if (!(out.std[c] > 0.0f))
            fail("Normalization::of: channel {} has the same value ({}) in every pixel of the {} images; its standard "
                 "deviation is 0, so it cannot be standardised",
                 c, static_cast<int>(std::lround(mean * 255.0)), n);
    }
    return out;
}

Split hold_out(const Records& data, std::size_t validation_size, std::uint64_t seed) {
    if (validation_size >= data.size())
        fail("hold_out: cannot hold out {} validation records from a dataset of {}: the validation set must be "
             "smaller than the dataset so that records are left for training",
             validation_size, data.size());
    auto indices = detail::iota(data.size());
    std::mt19937_64 engine(detail::mix(seed));
    detail::shuffle(indices, engine);
    std::vector<std::size_t> validation(indices.begin(), indices.begin() + static_cast<std::ptrdiff_t>(validation_size));
    std::vector<std::size_t> train(indices.begin() + static_cast<std::ptrdiff_t>(validation_size), indices.end());
    std::sort(train.begin(), train.end());
    return {data.subset(train), data.subset(validation)};
}

// ---- batches -------------------------------------------------------------------------------------

void fill_batch(const Records& data, const std::vector<std::size_t>& order, std::size_t first, std::size_t count,
                const Normalization& norm, Tensor<float>& images, std::vector<int>& labels) {
    if (first > order.size() || count > order.size() - first)
        fail("fill_batch: records [{}, {}) run past the order's {} entries", first, first + count, order.size());
    for (std::size_t i = first; i < first + count; ++i)
        if (order[i] >= data.size())
            fail("fill_batch: order[{}] = {} is out of range for a dataset of {} records", i, order[i], data.size());
    fill_records(data, order.data() + first, 0, count, norm, images, labels);
}

void fill_batch(const Records& data, std::size_t first, std::size_t count, const Normalization& norm,
                Tensor<float>& images, std::vector<int>& labels) {
    if (first > data.size() || count > data.size() - first)
        fail("fill_batch: records [{}, {}) run past the dataset's {} records", first, first + count, data.size());
    fill_records(data, nullptr, first, count, norm, images, labels);
}

CifarDataset::CifarDataset(Records records, const Normalization& norm, std::vector<std::string> class_names)
    : records_(std::move(records)), norm_(norm), names_(std::move(class_names)) {
    (void)Lut(norm_);  // a bad normalisation fails here, not at the first batch
    if (records_.images.size() != records_.size() * image_bytes)
        fail("CifarDataset: {} labels but {} image bytes (expected {})", records_.size(), records_.images.size(),
             records_.size() * image_bytes);
    if (!names_.empty() && names_.size() != class_count)
        fail("CifarDataset: {} class names, expected {}", names_.size(), class_count);
}

std::vector<std::string> CifarDataset::class_names() const {
    return names_.empty() ? Dataset::class_names() : names_;
}

void CifarDataset::fill(const std::size_t* indices, std::size_t count, Tensor<float>& batch, std::vector<int>& labels) const {
    fill_records(records_, indices, 0, count, norm_, batch, labels);
}

}  // namespace mcnn::data
