// Writes the seed corpus of the fuzz harnesses into DIR/<harness>/ (scripts/fuzz-corpus.sh runs it
// into tests/fuzz-corpus): valid files made by the library's own writers (serialize_safetensors,
// TrainConfig::to_json, format_log) and invalid ones made from them by the damage each reader
// must refuse (cut short, sizes that disagree, numbers out of range, ...), one small file each.
//   fuzz_seed_corpus DIR
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "mcnn/data/cifar10.hpp"
#include "mcnn/error.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/config.hpp"
#include "mcnn/train/trainer.hpp"

namespace {

namespace fs = std::filesystem;
using mcnn::Shape;
using mcnn::Tensor;
using mcnn::TensorFile;

fs::path root;
int written = 0;

void put(const std::string& harness, const std::string& name, const std::string& bytes) {
    const fs::path dir = root / harness;
    fs::create_directories(dir);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) mcnn::fail("cannot write {}", (dir / name).string());
    ++written;
}

/// Values 0.5, 1.5, ... (distinct, exact in float).
Tensor<float> counting(const Shape& shape) {
    Tensor<float> t(shape);
    for (std::size_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(i) + 0.5f;
    return t;
}

std::string le64(std::uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
}

/// A safetensors file with the given header text (padded by nobody) and data bytes.
std::string raw_safetensors(const std::string& header, const std::string& data) {
    return le64(header.size()) + header + data;
}

void safetensors_seeds() {
    const auto put_file = [](const std::string& name, const TensorFile& f) {
        put("safetensors", name, mcnn::serialize_safetensors(f, name));
    };
    put_file("valid-empty.safetensors", TensorFile{});
    TensorFile scalar;
    scalar.tensors.emplace_back("x", Tensor<float>(Shape{}, 2.5f));
    put_file("valid-scalar.safetensors", scalar);

    // Like a checkpoint: model parameters, momentum, the trainer's metadata.
    TensorFile ckpt;
    ckpt.tensors.emplace_back("model/conv1.weight", counting(Shape{2, 1, 2, 2}));
    ckpt.tensors.emplace_back("model/conv1.bias", counting(Shape{2}));
    ckpt.tensors.emplace_back("model/fc.weight", counting(Shape{3, 2}));
    ckpt.tensors.emplace_back("sgd/momentum/conv1.weight", Tensor<float>(Shape{2, 1, 2, 2}, -0.25f));
    ckpt.tensors.emplace_back("empty", Tensor<float>(Shape{0, 3}));
    ckpt.metadata = {{"format", "manualcnn-checkpoint/1"}, {"model", "simple"}, {"epochs_done", "1"},
                     {"step", "12500"}, {"images", "50000"}, {"train_seconds", "12.500000"}};
    const std::string valid = mcnn::serialize_safetensors(ckpt, "checkpoint");
    put("safetensors", "valid-checkpoint.safetensors", valid);

    TensorFile odd;  // non-finite values, negative zero, a rank-4 tensor with a zero dimension
    Tensor<float> values(Shape{5});
    values.data()[0] = std::numeric_limits<float>::quiet_NaN();
    values.data()[1] = std::numeric_limits<float>::infinity();
    values.data()[2] = -std::numeric_limits<float>::infinity();
    values.data()[3] = -0.0f;
    values.data()[4] = std::numeric_limits<float>::denorm_min();
    odd.tensors.emplace_back("values", values);
    odd.tensors.emplace_back("nothing", Tensor<float>(Shape{1, 0, 2, 3}));
    odd.metadata = {{"note", "ünïcode ✓"}};
    put_file("valid-nonfinite.safetensors", odd);

    // Damaged copies of the checkpoint and hand-written headers.
    put("safetensors", "bad-truncated.safetensors", valid.substr(0, valid.size() - 3));
    put("safetensors", "bad-short.safetensors", valid.substr(0, 5));
    put("safetensors", "bad-trailing.safetensors", valid + "xyz!");
    std::string long_header = valid;
    long_header[5] = '\x01';
    put("safetensors", "bad-header-length.safetensors", long_header);
    const std::string data8(8, '\0');
    put("safetensors", "bad-not-json.safetensors", raw_safetensors("{\"a\": [1, 2", data8));
    put("safetensors", "bad-array.safetensors", raw_safetensors("[1, 2, 3]", ""));
    put("safetensors", "bad-duplicate.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        data8));
    put("safetensors", "bad-dtype.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", data8));
    put("safetensors", "bad-shape.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8));
    put("safetensors", "bad-rank.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[1,1,1,1,2],"data_offsets":[0,8]}})", data8));
    put("safetensors", "bad-huge-shape.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[2147483647,2147483647,2147483647,0],"data_offsets":[0,0]},)"
                        R"("b":{"dtype":"F32","shape":[65536,65536,65536],"data_offsets":[0,8]}})",
                        data8));
    put("safetensors", "bad-offsets.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", data8));
    put("safetensors", "bad-overlap.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        data8));
    put("safetensors", "bad-gap.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data8));
    put("safetensors", "bad-metadata.safetensors",
        raw_safetensors(R"({"__metadata__":{"step":12},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
                        data8.substr(0, 4)));
    // Found by the harness: the reader took a name the writer refuses, so the file could not be saved again.
    put("safetensors", "bad-empty-name.safetensors",
        raw_safetensors(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", data8.substr(0, 4)));
    put("safetensors", "bad-offset-wrap.safetensors",
        raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,0]}})", ""));
}

void cifar10_seeds() {
    namespace d = mcnn::data;
    std::string records;
    for (int r = 0; r < 3; ++r) {
        records += static_cast<char>(r * 4 + 1);  // labels 1, 5, 9
        for (int i = 0; i < d::image_bytes; ++i) records += static_cast<char>((i * 7 + r * 31) & 0xff);
    }
    put("cifar10", "valid-1-record.bin", records.substr(0, d::record_bytes));
    put("cifar10", "valid-3-records.bin", records);
    put("cifar10", "bad-empty.bin", "");
    put("cifar10", "bad-truncated.bin", records.substr(0, 2 * d::record_bytes - 1));
    put("cifar10", "bad-one-byte-over.bin", records.substr(0, d::record_bytes) + "\x03");
    std::string label = records;
    label[2 * d::record_bytes] = 10;
    put("cifar10", "bad-label-10.bin", label);
    label[2 * d::record_bytes] = '\xff';
    put("cifar10", "bad-label-255.bin", label);
    std::string cifar100 = records.substr(0, d::record_bytes - 1);  // two label bytes per record
    put("cifar10", "bad-cifar100.bin", std::string(1, '\x03') + cifar100 + std::string(1, '\x00'));
}

/// `json` with the value of "key" (as written by to_json) replaced by `value`.
std::string with_field(const std::string& json, const std::string& key, const std::string& value) {
    const std::string quoted = "\"" + key + "\": ";
    const auto at = json.find(quoted);
    if (at == std::string::npos) mcnn::fail("seed_corpus: no field {}", key);
    const auto begin = at + quoted.size();
    const auto end = json.find_first_of(",\n", begin);
    return json.substr(0, begin) + value + json.substr(end);
}

void config_seeds() {
    mcnn::TrainConfig c;
    const std::string valid = c.to_json();
    put("config", "valid-default.json", valid);
    mcnn::TrainConfig tuned;
    tuned.model = "tuned";
    tuned.epochs = 10;
    tuned.batch = 64;
    tuned.sgd = {.lr = 0.0007, .momentum = 0.9, .dampening = 0.0, .weight_decay = 5e-4, .nesterov = true};
    tuned.seed = 12345678901234ULL;
    tuned.validation = 5000;
    tuned.conv = "correlate2d";
    tuned.normalization = "dataset";
    tuned.max_batches = 100;
    tuned.plots = false;
    put("config", "valid-tuned.json", tuned.to_json());
    put("config", "valid-old-conv-name.json", with_field(valid, "conv", "\"fast\""));
    put("config", "bad-epochs-0.json", with_field(valid, "epochs", "0"));  // parses; validate() refuses

    // Numbers that wrapped or were truncated before (issue 10), and other damage.
    put("config", "bad-batch-1e12.json", with_field(valid, "batch", "1000000000000"));
    put("config", "bad-batch-2p32-plus-4.json", with_field(valid, "batch", "4294967300"));
    put("config", "bad-batch-float.json", with_field(valid, "batch", "4.5"));
    put("config", "bad-batch-1e300.json", with_field(valid, "batch", "1e300"));
    put("config", "bad-batch-bool.json", with_field(valid, "batch", "true"));
    put("config", "bad-seed-negative.json", with_field(valid, "seed", "-1"));
    put("config", "bad-validation-negative.json", with_field(valid, "validation", "-1"));
    put("config", "bad-max-batches-2p64.json", with_field(valid, "max_batches", "18446744073709551616"));
    put("config", "bad-lr-1e400.json", with_field(valid, "lr", "1e400"));
    put("config", "bad-lr-string.json", with_field(valid, "lr", "\"0.01\""));
    put("config", "bad-conv.json", with_field(valid, "conv", "\"nope\""));
    put("config", "bad-missing-field.json", valid.substr(0, valid.find("  \"batch\"")) + valid.substr(valid.find("  \"lr\"")));
    put("config", "bad-not-json.json", valid.substr(0, valid.size() / 2));
    put("config", "bad-array.json", "[1, 2, 3]");
    put("config", "bad-empty.json", "");
}

void log_seeds() {
    const std::vector<mcnn::LogRow> rows{{"train", 1, 2000, 8000, 2.190123, 0.18, 5432.1, 1.5, 0.001},
                                         {"train", 1, 4000, 16000, 1.9, 0.3, 5500.0, 2.9, 2.5e-05},
                                         {"test", 1, 4000, 16000, 1.6, 0.42, 25000.0, 2.9, 0},
                                         {"validation", 2, 12500, 50000, 1.2, 0.58, 24000.5, 9.25, 0.1}};
    const std::string valid = mcnn::format_log(rows);
    put("log", "valid.csv", valid);
    put("log", "valid-header-only.csv", mcnn::format_log({}));
    std::string crlf;
    for (char ch : valid) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
    put("log", "crlf.csv", crlf);
    put("log", "blank-lines.csv", valid + "\n\n");
    put("log", "no-final-newline.csv", valid.substr(0, valid.size() - 1));

    const std::string header = mcnn::format_log({});
    put("log", "bad-header.csv", "kind,epoch,step\n" + valid.substr(header.size()));
    put("log", "bad-empty.csv", "");
    put("log", "bad-columns.csv", header + "train,1,2000,8000,2.19,0.18,5432.1,1.5\n");
    // a log written before the lr column: 8 columns under the old header (read with lr 0)
    const std::string old_header = "kind,epoch,step,images,loss,accuracy,images_per_s,elapsed_s\n";
    put("log", "valid-without-lr.csv", old_header + "train,1,2000,8000,2.190123,0.1800,5432.1,1.500\n");
    put("log", "bad-lr-in-old-log.csv", old_header + "train,1,2000,8000,2.19,0.18,5432.1,1.5,0.1\n");
    put("log", "bad-lr-negative.csv", header + "train,1,2000,8000,2.19,0.18,5432.1,1.5,-0.1\n");
    put("log", "bad-number.csv", header + "train,one,2000,8000,2.19,0.18,5432.1,1.5,0.01\n");
    put("log", "bad-step-huge.csv", header + "train,1,9223372036854775808,8000,2.19,0.18,5432.1,1.5,0.01\n");
    put("log", "bad-step-negative.csv", header + "train,1,-100,8000,2.19,0.18,5432.1,1.5,0.01\n");
    put("log", "bad-epoch-2p31.csv", header + "train,2147483648,2000,8000,2.19,0.18,5432.1,1.5,0.01\n");
    put("log", "bad-nan.csv", header + "train,1,2000,8000,nan,0.18,5432.1,1.5,0.01\n");
    put("log", "bad-trailing-text.csv", header + "train,1,2000x,8000,2.19,0.18,5432.1,1.5,0.01\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR  (writes DIR/<harness>/<seed>)\n", argv[0]);
        return 2;
    }
    root = argv[1];
    try {
        safetensors_seeds();
        cifar10_seeds();
        config_seeds();
        log_seeds();
    } catch (const mcnn::Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    std::printf("%d seed files written under %s\n", written, root.c_str());
    return 0;
}
