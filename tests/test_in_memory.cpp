// The in-memory entry points of the file readers (what the fuzz harnesses call): each reads exactly
// what its file reader reads, and the writers' bytes are what they save. parse_safetensors vs
// load_safetensors, serialize_safetensors vs save_safetensors, parse_records vs read_batch_file,
// parse_log / format_log vs read_log and the trainer's log.csv format; messages name the given name.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "mcnn/data/cifar10.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/trainer.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;
namespace fs = std::filesystem;

namespace {

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    BOOST_TEST_REQUIRE(static_cast<bool>(out));
}

void check_same(const TensorFile& a, const TensorFile& b) {
    BOOST_TEST_REQUIRE(a.tensors.size() == b.tensors.size());
    for (std::size_t i = 0; i < a.tensors.size(); ++i) {
        BOOST_TEST(a.tensors[i].first == b.tensors[i].first);
        BOOST_TEST(a.tensors[i].second.shape() == b.tensors[i].second.shape());
        const std::size_t n = a.tensors[i].second.numel();  // bit patterns: NaN and -0 too
        BOOST_TEST((n == 0 || std::memcmp(a.tensors[i].second.data(), b.tensors[i].second.data(), 4 * n) == 0));
    }
    BOOST_TEST((a.metadata == b.metadata));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(in_memory)

BOOST_AUTO_TEST_CASE(safetensors_bytes_are_the_file) {
    TempDir tmp;
    TensorFile f;
    f.tensors.emplace_back("b", Tensor<float>(Shape{2, 3}, {0.5f, -1.25f, 3e-39f, -0.0f, 1e30f, 7.0f}));
    f.tensors.emplace_back("a", Tensor<float>(Shape{}, std::numeric_limits<float>::quiet_NaN()));
    f.tensors.emplace_back("empty", Tensor<float>(Shape{0, 4}));
    f.metadata = {{"step", "7"}};
    save_safetensors(tmp.path / "f.safetensors", f);
    const std::string bytes = serialize_safetensors(f, "memory");
    BOOST_TEST(bytes == read_text(tmp.path / "f.safetensors"));
    check_same(parse_safetensors(bytes, "memory"), load_safetensors(tmp.path / "f.safetensors"));
    check_same(parse_safetensors(bytes, "memory"), f);

    // A refusal names what the caller called the bytes.
    CHECK_MESSAGE_HAS(error_of([&] { parse_safetensors(bytes.substr(0, bytes.size() - 1), "my bytes"); }),
                      "load_safetensors my bytes: truncated");
    CHECK_MESSAGE_HAS(error_of([&] { serialize_safetensors(TensorFile{{{"", Tensor<float>()}}, {}}, "out"); }),
                      "save_safetensors out: tensor 0 has an empty name");
    // What the writer refuses, the reader refuses too (found by fuzz/safetensors.cpp's round trip).
    const std::string header = R"({"":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})";
    std::string unnamed(8, '\0');
    unnamed[0] = static_cast<char>(header.size());
    unnamed += header + std::string(4, '\0');
    CHECK_MESSAGE_HAS(error_of([&] { parse_safetensors(unnamed, "in"); }), "load_safetensors in: a tensor has an empty name");
}

BOOST_AUTO_TEST_CASE(records_from_bytes_as_from_the_file) {
    TempDir tmp;
    std::string bytes;
    for (int r = 0; r < 2; ++r) {
        bytes += static_cast<char>(7 - r);
        for (int i = 0; i < data::image_bytes; ++i) bytes += static_cast<char>((i + 13 * r) & 0xff);
    }
    write_bytes(tmp.path / "b.bin", bytes);
    const data::Records a = data::parse_records(bytes, "memory"), b = data::read_batch_file(tmp.path / "b.bin", 2);
    BOOST_TEST(a.labels == (std::vector<std::uint8_t>{7, 6}));
    BOOST_TEST(a.labels == b.labels);
    BOOST_TEST(a.images == b.images);
    BOOST_TEST(std::memcmp(a.images.data() + data::image_bytes, bytes.data() + data::record_bytes + 1, data::image_bytes) == 0);
    CHECK_MESSAGE_HAS(error_of([&] { data::parse_records(bytes.substr(1), "my bytes"); }), "'my bytes' has 6145 bytes");
}

BOOST_AUTO_TEST_CASE(log_text_round_trip) {
    const std::vector<LogRow> rows{{"train", 1, 2000, 8000, 2.190123, 0.18, 5432.1, 1.5, 0.00125},
                                   {"test", 2, 4000, 16000, 1.6, 0.4275, 25000.0, 2.875, 1e-5}};
    const std::string text = format_log(rows);
    BOOST_TEST(text.substr(0, text.find('\n')) == "kind,epoch,step,images,loss,accuracy,images_per_s,elapsed_s,lr");
    BOOST_TEST(text.substr(text.find('\n') + 1, text.find('\n', text.find('\n') + 1) - text.find('\n') - 1) ==
               "train,1,2000,8000,2.190123,0.1800,5432.1,1.500,0.00125");
    const std::vector<LogRow> back = parse_log(text, "memory");
    BOOST_TEST_REQUIRE(back.size() == rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        BOOST_TEST(back[i].kind == rows[i].kind);
        BOOST_TEST(back[i].epoch == rows[i].epoch);
        BOOST_TEST(back[i].step == rows[i].step);
        BOOST_TEST(back[i].images == rows[i].images);
        BOOST_TEST(back[i].loss == rows[i].loss);  // all exact at the writer's precision
        BOOST_TEST(back[i].accuracy == rows[i].accuracy);
        BOOST_TEST(back[i].images_per_second == rows[i].images_per_second);
        BOOST_TEST(back[i].elapsed == rows[i].elapsed);
        BOOST_TEST(back[i].lr == rows[i].lr);
    }
    TempDir tmp;
    write_bytes(tmp.path / "log.csv", text);
    BOOST_TEST(format_log(read_log(tmp.path / "log.csv")) == text);
    CHECK_MESSAGE_HAS(error_of([&] { parse_log("kind,epoch\n", "my log"); }), "my log: unexpected header");
}

BOOST_AUTO_TEST_SUITE_END()
