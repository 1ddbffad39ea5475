#pragma once
// Checkpoints in the safetensors format (readable by Python's `safetensors`, numpy or anything
// that reads a JSON header): an 8-byte little-endian header length N, N bytes of JSON mapping each
// tensor name to {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} plus an optional
// "__metadata__" object of string -> string, then the raw little-endian data.
//
// Writing is atomic: the file is written to "<path>.tmp", flushed to disk, then renamed over
// <path>, so a crash (even kill -9) leaves either the old checkpoint or the new one, never half of
// one. Every failure (full disk, over the file-size limit, read-only folder) throws naming the file
// and the system's reason, and removes "<path>.tmp": the old file stays as it was. SIGXFSZ is
// ignored while writing, so the file-size limit is an error like any other instead of ending the
// process. Reading validates everything and fails with a message naming the file and the problem.
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mcnn/tensor.hpp"

namespace mcnn {

struct TensorFile {
    std::vector<std::pair<std::string, Tensor<float>>> tensors;  // in file order
    std::map<std::string, std::string> metadata;
    /// The tensor called `name`; throws naming the file's tensors when there is none.
    const Tensor<float>& at(const std::string& name) const;
    bool contains(const std::string& name) const;
};

/// Writes `file` to `path` atomically (temp file + fsync + rename). Names must be unique and non-empty.
void save_safetensors(const std::filesystem::path& path, const TensorFile& file);

/// The bytes save_safetensors writes for `file` (header padded to a multiple of 8, then the data in
/// the order of file.tensors). Throws mcnn::Error naming `name` on names it cannot store (empty,
/// duplicate, "__metadata__", not UTF-8).
std::string serialize_safetensors(const TensorFile& file, const std::string& name);

/// Writes `bytes` to `path` the same way (temp file + fsync + rename): readers see the old file or
/// the new one, never half of one. Throws naming the path on failure, leaving no temp file.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

/// Appends `bytes` to `path` (created when missing). Throws naming the path and the system's
/// reason when the write fails; what part of `bytes` got written is cut off again, so the file
/// ends as it was (no half line in a log).
void append_to_file(const std::filesystem::path& path, std::string_view bytes);

/// Reads a safetensors file with F32 tensors. Throws mcnn::Error naming the path and what is wrong:
/// missing file, shorter than its header says (truncated), header not valid JSON, unsupported
/// dtype, shape and byte range that disagree, data ranges that overlap or leave gaps or run past
/// the end of the file.
TensorFile load_safetensors(const std::filesystem::path& path);

/// The same reader on a safetensors file held in memory: `bytes` is the whole file, `name` is what
/// messages call it (the fuzz harness fuzz/safetensors.cpp calls this).
TensorFile parse_safetensors(std::string_view bytes, const std::string& name);

}  // namespace mcnn
