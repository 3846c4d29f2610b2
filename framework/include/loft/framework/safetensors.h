// Hugging Face safetensors: a strict, memory-mapped reader (single files and sharded checkpoints) and a writer whose
// files are byte-identical to safetensors.torch.save_file (safetensors 0.8) and transformers' save_pretrained shards.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include "loft/status.h"

namespace loft {

// One tensor's entry in a safetensors header.
struct TensorInfo {
  std::string name;
  c10::ScalarType dtype = c10::ScalarType::Undefined;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // absolute file offset of the first byte
  uint64_t end = 0;    // absolute file offset one past the last byte
  uint64_t size_bytes() const { return end - begin; }
};

// The safetensors dtype name ("BF16", "F32", ...) of a torch dtype, or "" where safetensors has none.
std::string safetensors_dtype_name(c10::ScalarType dtype);
// The torch dtype of a safetensors dtype name; an error for unknown names and for dtypes torch cannot hold (F4, F6).
StatusOr<c10::ScalarType> safetensors_dtype_from_name(const std::string& name);

// One memory-mapped .safetensors file, validated on open as strictly as the Rust crate (and a little more: duplicate
// names, trailing bytes). Immutable after open(), so reads from many threads are safe.
class SafetensorsFile {
 public:
  // Maps `path` read-only and validates the header. Each error is one line naming the file, the tensor and the problem.
  static StatusOr<std::shared_ptr<SafetensorsFile>> open(const std::filesystem::path& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data order (increasing offsets)
  const TensorInfo* find(const std::string& name) const;               // nullptr when absent
  // A zero-copy CPU tensor over the mapping; it keeps the mapping alive, so it may outlive this object. The memory is
  // READ-ONLY: writing into it (in-place ops) faults. clone() or .to() first. A tensor whose bytes are not aligned to
  // its element size is copied instead (see the .cpp). Throws std::out_of_range naming the file and tensor if absent.
  at::Tensor tensor(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // "__metadata__", may be empty
  const std::filesystem::path& path() const { return path_; }
  uint64_t file_size_bytes() const { return file_size_; }
  uint64_t data_begin() const { return data_begin_; }  // absolute offset of the byte buffer (8 + header length)

  struct Mapping;  // the mmap; shared with every tensor handed out

 private:
  SafetensorsFile() = default;
  at::Tensor make_tensor(const TensorInfo& info) const;

  std::filesystem::path path_;
  std::shared_ptr<Mapping> mapping_;
  uint64_t file_size_ = 0;
  uint64_t data_begin_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint: a folder holding model.safetensors.index.json (weight_map -> shards) or model.safetensors, a path to
// such an index, or a path to one .safetensors file. Copyable (shares the mapped files); thread-safe reads.
class CheckpointReader {
 public:
  static StatusOr<CheckpointReader> open(const std::filesystem::path& folder_or_file);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // Both throw std::out_of_range naming the checkpoint and the tensor when absent.
  const TensorInfo& info(const std::string& name) const;
  at::Tensor tensor(const std::string& name) const;  // as SafetensorsFile::tensor: read-only zero-copy view
  const std::filesystem::path& path() const { return path_; }
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }  // the shards, opened once
  const SafetensorsFile& file_of(const std::string& name) const;

 private:
  struct Entry {
    size_t file = 0;    // index into files_
    size_t tensor = 0;  // index into files_[file]->tensors()
  };
  std::filesystem::path path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry> entries_;
};

// Writes tensors (any device; copied to CPU one at a time, made contiguous) atomically, laid out exactly as
// safetensors 0.8's save_file: sorted by descending dtype alignment then name, compact JSON header padded with spaces
// to a multiple of 8, "__metadata__" first (omitted when empty). Errors for duplicate names, undefined tensors, the
// reserved name "__metadata__" and dtypes safetensors cannot store. With several metadata keys the bytes can differ
// from Python's (the Rust crate writes them in hash order; loft writes them sorted); readers do not care.
Status write_safetensors(const std::filesystem::path& path,
                         const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

// Writes a checkpoint folder as transformers' save_pretrained does (safetensors, metadata {"format": "pt"}): tensors
// are taken in the given order and a new shard starts when the next tensor would push the current one past
// max_shard_bytes (a tensor larger than that gets a shard of its own). One shard -> model.safetensors; several ->
// model-0000i-of-0000n.safetensors + model.safetensors.index.json (metadata total_parameters and total_size,
// indent 2, sorted keys). Creates the folder; removes stale model*.safetensors shards and the index left by an earlier
// save into it. Every file is written atomically, the index last.
Status write_sharded_checkpoint(const std::filesystem::path& folder,
                                const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                uint64_t max_shard_bytes);

}  // namespace loft
