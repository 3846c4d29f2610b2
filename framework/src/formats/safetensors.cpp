// safetensors reader (mmap, strict validation), writer (byte-identical to safetensors 0.8 save_file) and sharded
// checkpoints (transformers' save_pretrained layout). Format: u64 little-endian header length N, N bytes of UTF-8 JSON,
// then the data area; data_offsets are relative to the data area.
#include "loft/framework/safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <cstdio>
#include <stdexcept>

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <nlohmann/json.hpp>

#include "loft/framework/atomic_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors is little-endian; loft maps it without swapping");

namespace loft {

struct SafetensorsFile::Mapping {
  void* address = nullptr;
  size_t size_bytes = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (address != nullptr) ::munmap(address, size_bytes);
  }
};

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the Rust crate's MAX_HEADER_SIZE
constexpr int kMaxJsonDepth = 8;                   // a valid header nests 3 deep: {name: {shape: [..]}}

struct DtypeEntry {
  const char* name;
  c10::ScalarType type;  // Undefined: known to safetensors, not representable in torch
  int rank;              // position in the Rust crate's `enum Dtype`; the writer sorts by it, descending
};

// The Rust crate's Dtype enum, in declaration order (safetensors/src/tensor.rs).
const DtypeEntry kDtypes[] = {
    {"BOOL", c10::ScalarType::Bool, 0},
    {"F4", c10::ScalarType::Undefined, 1},
    {"F6_E2M3", c10::ScalarType::Undefined, 2},
    {"F6_E3M2", c10::ScalarType::Undefined, 3},
    {"U8", c10::ScalarType::Byte, 4},
    {"I8", c10::ScalarType::Char, 5},
    {"F8_E5M2", c10::ScalarType::Float8_e5m2, 6},
    {"F8_E4M3", c10::ScalarType::Float8_e4m3fn, 7},
    {"F8_E8M0", c10::ScalarType::Float8_e8m0fnu, 8},
    {"F8_E4M3FNUZ", c10::ScalarType::Float8_e4m3fnuz, 9},
    {"F8_E5M2FNUZ", c10::ScalarType::Float8_e5m2fnuz, 10},
    {"I16", c10::ScalarType::Short, 11},
    {"U16", c10::ScalarType::UInt16, 12},
    {"F16", c10::ScalarType::Half, 13},
    {"BF16", c10::ScalarType::BFloat16, 14},
    {"I32", c10::ScalarType::Int, 15},
    {"U32", c10::ScalarType::UInt32, 16},
    {"F32", c10::ScalarType::Float, 17},
    {"C64", c10::ScalarType::ComplexFloat, 18},
    {"F64", c10::ScalarType::Double, 19},
    {"I64", c10::ScalarType::Long, 20},
    {"U64", c10::ScalarType::UInt64, 21},
};

const DtypeEntry* dtype_entry(c10::ScalarType type) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.type == type && type != c10::ScalarType::Undefined) return &e;
  }
  return nullptr;
}

// Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF), as Rust's str::from_utf8.
// Returns the offset of the first bad byte, or npos.
size_t find_invalid_utf8(const unsigned char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return std::string::npos;
}

std::string quote_name(const std::string& s) { return "'" + s + "'"; }

// Thrown from inside the JSON parser callback to stop at the first structural problem.
struct HeaderRejected {
  std::string message;
};

enum class JsonKind { kHeader, kIndex };

// Parses a header (or an index), rejecting duplicate keys at any level (nlohmann would keep the last), deep nesting
// and NUL bytes (nlohmann stops at a NUL as if the input ended there; serde_json, and so Python, refuses it).
json parse_strict_json(const char* data, size_t size, JsonKind kind) {
  if (const void* nul = std::memchr(data, 0, size)) {
    throw HeaderRejected{"not valid JSON: NUL byte at offset " + std::to_string(static_cast<const char*>(nul) - data)};
  }
  std::vector<std::set<std::string>> keys;  // one set per open object; arrays push nothing
  int depth = 0;
  std::string top_key;
  auto callback = [&](int, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (++depth > kMaxJsonDepth) {
          throw HeaderRejected{"header JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
        }
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        --depth;
        keys.pop_back();
        break;
      case json::parse_event_t::array_end:
        --depth;
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (keys.size() == 1) top_key = key;
        if (!keys.back().insert(key).second) {
          if (kind == JsonKind::kHeader) {
            if (keys.size() == 1) throw HeaderRejected{"tensor " + quote_name(key) + ": duplicate name in the header"};
            throw HeaderRejected{"tensor " + quote_name(top_key) + ": duplicate key " + quote_name(key)};
          }
          if (keys.size() == 2 && top_key == "weight_map") {
            throw HeaderRejected{"tensor " + quote_name(key) + ": listed twice in weight_map"};
          }
          throw HeaderRejected{"duplicate key " + quote_name(key)};
        }
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  return json::parse(data, data + size, callback, /*allow_exceptions=*/true, /*ignore_comments=*/false);
}

// A JSON number that is a non-negative integer (nlohmann keeps those as number_unsigned).
bool as_unsigned(const json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  *out = v.get<uint64_t>();
  return true;
}

std::string describe_kind(const json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return "a negative number";
  if (v.is_number_float()) return "a non-integer number";
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  if (v.is_null()) return "null";
  return std::string("a ") + v.type_name();
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// serde_json's string escaping: ", \ and control characters only; everything else verbatim (UTF-8).
void append_json_string(std::string& out, const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

}  // namespace

std::string safetensors_dtype_name(c10::ScalarType dtype) {
  const DtypeEntry* e = dtype_entry(dtype);
  return e ? e->name : "";
}

StatusOr<c10::ScalarType> safetensors_dtype_from_name(const std::string& name) {
  for (const DtypeEntry& e : kDtypes) {
    if (name == e.name) {
      if (e.type == c10::ScalarType::Undefined) {
        return Status::InvalidArgument("dtype " + name + " is a sub-byte type that torch cannot hold; loft does not support it");
      }
      return e.type;
    }
  }
  return Status::InvalidArgument("unknown dtype " + quote_name(name) +
                                 " (expected BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, C64 or F8_*)");
}

// ---------------------------------------------------------------------------------------------------------------------
// Reader

SafetensorsFile::~SafetensorsFile() = default;

StatusOr<std::shared_ptr<SafetensorsFile>> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string where = path.string() + ": ";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = where + "cannot open: " + std::strerror(err);
    return err == ENOENT ? Status::NotFound(msg) : Status::IoError(msg);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::IoError(where + "cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(where + "not a regular file");
  }
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    return Status::InvalidArgument(where + "file is " + std::to_string(file_size) +
                                   " bytes, shorter than the 8-byte header length; not a safetensors file");
  }
  auto mapping = std::make_shared<Mapping>();
  void* address = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the file
  if (address == MAP_FAILED) return Status::IoError(where + "cannot mmap: " + std::strerror(map_err));
  mapping->address = address;
  mapping->size_bytes = file_size;
  const auto* bytes = static_cast<const unsigned char*>(address);

  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes, 8);
  if (header_bytes > kMaxHeaderBytes) {
    return Status::InvalidArgument(where + "header length " + std::to_string(header_bytes) +
                                   " exceeds the 100 MB limit; not a safetensors file or corrupt");
  }
  if (header_bytes > file_size - 8) {
    return Status::InvalidArgument(where + "header length " + std::to_string(header_bytes) + " runs past the end of the " +
                                   std::to_string(file_size) + "-byte file; truncated or not a safetensors file");
  }
  const char* header = reinterpret_cast<const char*>(bytes + 8);
  if (const size_t bad = find_invalid_utf8(bytes + 8, header_bytes); bad != std::string::npos) {
    return Status::InvalidArgument(where + "header is not valid UTF-8 (byte " + std::to_string(8 + bad) + ")");
  }
  json root;
  try {
    root = parse_strict_json(header, header_bytes, JsonKind::kHeader);
  } catch (const HeaderRejected& e) {
    return Status::InvalidArgument(where + (e.message.rfind("not valid JSON", 0) == 0 ? "header is " : "") + e.message);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(where + "header is not valid JSON: " + e.what());
  }
  if (!root.is_object()) return Status::InvalidArgument(where + "header is not a JSON object but " + describe_kind(root));

  auto file = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = std::move(mapping);
  file->file_size_ = file_size;
  file->data_begin_ = 8 + header_bytes;
  const uint64_t data_bytes = file_size - file->data_begin_;

  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      if (value.is_null()) continue;  // the Rust crate reads null as "no metadata"
      if (!value.is_object()) {
        return Status::InvalidArgument(where + "__metadata__ must be an object of strings, not " + describe_kind(value));
      }
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) {
          return Status::InvalidArgument(where + "__metadata__ must map strings to strings, but " + quote_name(key) + " holds " +
                                         describe_kind(text));
        }
        file->metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    const std::string ctx = where + "tensor " + quote_name(name) + ": ";
    if (!value.is_object()) return Status::InvalidArgument(ctx + "entry must be an object, not " + describe_kind(value));
    TensorInfo info;
    info.name = name;

    const auto dtype_it = value.find("dtype");
    if (dtype_it == value.end()) return Status::InvalidArgument(ctx + "missing \"dtype\"");
    if (!dtype_it->is_string()) return Status::InvalidArgument(ctx + "\"dtype\" must be a string, not " + describe_kind(*dtype_it));
    StatusOr<c10::ScalarType> dtype = safetensors_dtype_from_name(dtype_it->get<std::string>());
    if (!dtype.ok()) return Status::InvalidArgument(ctx + dtype.status().message());
    info.dtype = dtype.value();

    const auto shape_it = value.find("shape");
    if (shape_it == value.end()) return Status::InvalidArgument(ctx + "missing \"shape\"");
    if (!shape_it->is_array()) return Status::InvalidArgument(ctx + "\"shape\" must be an array, not " + describe_kind(*shape_it));
    uint64_t numel = 1;
    for (const json& d : *shape_it) {
      uint64_t dim = 0;
      if (!as_unsigned(d, &dim)) {
        return Status::InvalidArgument(ctx + "\"shape\" entries must be non-negative integers, found " + describe_kind(d));
      }
      // Overflow is checked in order, as the Rust crate does (a later 0 does not excuse it).
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(numel, dim, &numel) ||
          numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Status::InvalidArgument(ctx + "\"shape\" " + shape_it->dump() + " overflows the element count");
      }
      info.shape.push_back(static_cast<int64_t>(dim));
    }

    const auto offsets_it = value.find("data_offsets");
    if (offsets_it == value.end()) return Status::InvalidArgument(ctx + "missing \"data_offsets\"");
    uint64_t begin = 0, end = 0;
    if (!offsets_it->is_array() || offsets_it->size() != 2 || !as_unsigned((*offsets_it)[0], &begin) ||
        !as_unsigned((*offsets_it)[1], &end)) {
      return Status::InvalidArgument(ctx + "\"data_offsets\" must be [begin, end] with non-negative integers, not " +
                                     offsets_it->dump());
    }
    if (end < begin) {
      return Status::InvalidArgument(ctx + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                     "] end before they begin");
    }
    const uint64_t itemsize = c10::elementSize(info.dtype);
    uint64_t expected = 0;
    if (__builtin_mul_overflow(numel, itemsize, &expected)) {
      return Status::InvalidArgument(ctx + "shape " + shape_string(info.shape) + " overflows the byte count");
    }
    if (end - begin != expected) {
      return Status::InvalidArgument(ctx + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                     "] hold " + std::to_string(end - begin) + " bytes but shape " +
                                     shape_string(info.shape) + " of " + dtype_it->get<std::string>() + " needs " +
                                     std::to_string(expected));
    }
    if (end > data_bytes) {
      return Status::InvalidArgument(ctx + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                     "] lie outside the data area of " + std::to_string(data_bytes) +
                                     " bytes (file truncated?)");
    }
    info.begin = file->data_begin_ + begin;
    info.end = file->data_begin_ + end;
    file->tensors_.push_back(std::move(info));
  }

  // The Rust crate requires the tensors, ordered by offsets, to tile the data area exactly: no overlap, no gap, no
  // trailing bytes. Python refuses anything else, so loft does too.
  std::stable_sort(file->tensors_.begin(), file->tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = file->data_begin_;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : file->tensors_) {
    const std::string ctx = where + "tensor " + quote_name(t.name) + ": ";
    if (t.begin < covered) {
      return Status::InvalidArgument(ctx + "bytes [" + std::to_string(t.begin - file->data_begin_) + ", " +
                                     std::to_string(t.end - file->data_begin_) + ") of the data area overlap tensor " +
                                     quote_name(previous->name));
    }
    if (t.begin > covered) {
      return Status::InvalidArgument(ctx + "starts at byte " + std::to_string(t.begin - file->data_begin_) +
                                     " of the data area but the previous tensor ends at " +
                                     std::to_string(covered - file->data_begin_) +
                                     "; safetensors requires tensors to cover the data area without gaps");
    }
    covered = t.end;
    previous = &t;
  }
  if (covered != file_size) {
    return Status::InvalidArgument(where + "the data area has " + std::to_string(file_size - covered) +
                                   " bytes after the last tensor (file is " + std::to_string(file_size) +
                                   " bytes, tensors end at " + std::to_string(covered) + "); corrupt or not safetensors");
  }
  for (size_t i = 0; i < file->tensors_.size(); ++i) file->index_[file->tensors_[i].name] = i;
  return file;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) throw std::out_of_range(path_.string() + ": no tensor named " + quote_name(name));
  return make_tensor(*info);
}

at::Tensor SafetensorsFile::make_tensor(const TensorInfo& info) const {
  const auto options = at::TensorOptions().dtype(info.dtype).device(at::kCPU);
  if (info.size_bytes() == 0) return at::empty(info.shape, options);
  auto* data = static_cast<char*>(mapping_->address) + info.begin;
  // The mapping is page-aligned and files written by the Python library keep every tensor aligned to its element
  // size (the header is padded to a multiple of 8 and tensors are sorted by descending alignment), but other writers
  // may not pad. A misaligned typed access is undefined behaviour in C++ and vectorised or GPU copy kernels may assume
  // natural alignment, so such a tensor is copied into an aligned allocation instead of viewed.
  if (reinterpret_cast<uintptr_t>(data) % c10::elementSize(info.dtype) != 0) {
    at::Tensor copy = at::empty(info.shape, options);
    std::memcpy(copy.data_ptr(), data, info.size_bytes());
    return copy;
  }
  std::shared_ptr<Mapping> keep_alive = mapping_;
  return at::from_blob(data, info.shape, [keep_alive](void*) mutable { keep_alive.reset(); }, options);
}

// ---------------------------------------------------------------------------------------------------------------------
// Checkpoints

namespace {

bool regular_file_exists(const std::filesystem::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool folder_exists(const std::filesystem::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

StatusOr<std::string> read_small_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(path.string() + ": cannot open: " + std::strerror(errno));
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return Status::IoError(path.string() + ": cannot read: " + std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

StatusOr<CheckpointReader> CheckpointReader::open(const std::filesystem::path& folder_or_file) {
  CheckpointReader reader;
  reader.path_ = folder_or_file;
  std::filesystem::path index_path;
  std::filesystem::path single_path;
  if (folder_exists(folder_or_file)) {
    if (regular_file_exists(folder_or_file / "model.safetensors.index.json")) {
      index_path = folder_or_file / "model.safetensors.index.json";
    } else if (regular_file_exists(folder_or_file / "model.safetensors")) {
      single_path = folder_or_file / "model.safetensors";
    } else {
      return Status::NotFound(folder_or_file.string() +
                              ": no model.safetensors or model.safetensors.index.json in this folder; pass a Hugging "
                              "Face model folder or a .safetensors file");
    }
  } else if (regular_file_exists(folder_or_file)) {
    (ends_with(folder_or_file.string(), ".json") ? index_path : single_path) = folder_or_file;
  } else {
    return Status::NotFound(folder_or_file.string() + ": no such file or folder");
  }

  if (!single_path.empty()) {
    StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::open(single_path);
    if (!file.ok()) return file.status();
    reader.files_.push_back(file.value());
    for (size_t i = 0; i < file.value()->tensors().size(); ++i) {
      reader.entries_[file.value()->tensors()[i].name] = Entry{0, i};
    }
    return reader;
  }

  const std::string where = index_path.string() + ": ";
  StatusOr<std::string> text = read_small_file(index_path);
  if (!text.ok()) return text.status();
  json index;
  try {
    index = parse_strict_json(text.value().data(), text.value().size(), JsonKind::kIndex);
  } catch (const HeaderRejected& e) {
    return Status::InvalidArgument(where + "malformed index, " + e.message);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(where + "malformed index, not valid JSON: " + e.what());
  }
  if (!index.is_object()) return Status::InvalidArgument(where + "malformed index: not a JSON object");
  const auto map_it = index.find("weight_map");
  if (map_it == index.end() || !map_it->is_object()) {
    return Status::InvalidArgument(where + "malformed index: needs a \"weight_map\" object {tensor name: shard file}");
  }
  const std::filesystem::path folder = index_path.parent_path();
  std::map<std::string, size_t> shard_ids;
  for (const auto& [name, shard] : map_it->items()) {
    if (!shard.is_string()) {
      return Status::InvalidArgument(where + "tensor " + quote_name(name) + ": weight_map value must be a shard file name, not " +
                                     describe_kind(shard));
    }
    const std::string shard_name = shard.get<std::string>();
    const std::filesystem::path rel(shard_name);
    bool escapes = shard_name.empty() || rel.is_absolute();
    for (const auto& part : rel) escapes = escapes || part == "..";
    if (escapes) {
      return Status::InvalidArgument(where + "tensor " + quote_name(name) + ": shard " + quote_name(shard_name) +
                                     " must be a file name inside the checkpoint folder");
    }
    auto [it, inserted] = shard_ids.emplace(shard_name, reader.files_.size());
    if (inserted) {
      const std::filesystem::path shard_path = folder / rel;
      if (!regular_file_exists(shard_path)) {
        return Status::NotFound(where + "tensor " + quote_name(name) + ": shard " + shard_path.string() + " is missing");
      }
      StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::open(shard_path);
      if (!file.ok()) return file.status();
      reader.files_.push_back(file.value());
    }
    const SafetensorsFile& file = *reader.files_[it->second];
    const TensorInfo* info = file.find(name);
    if (info == nullptr) {
      return Status::InvalidArgument(where + "tensor " + quote_name(name) + ": listed in weight_map but absent from shard " +
                                     file.path().string());
    }
    reader.entries_[name] = Entry{it->second, static_cast<size_t>(info - file.tensors().data())};
  }
  return reader;
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

const TensorInfo& CheckpointReader::info(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) throw std::out_of_range(path_.string() + ": no tensor named " + quote_name(name));
  return files_[it->second.file]->tensors()[it->second.tensor];
}

const SafetensorsFile& CheckpointReader::file_of(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) throw std::out_of_range(path_.string() + ": no tensor named " + quote_name(name));
  return *files_[it->second.file];
}

at::Tensor CheckpointReader::tensor(const std::string& name) const { return file_of(name).tensor(name); }

// ---------------------------------------------------------------------------------------------------------------------
// Writer

namespace {

struct PlannedTensor {
  const std::string* name;
  const at::Tensor* tensor;
  const DtypeEntry* dtype;
  uint64_t size_bytes;
};

}  // namespace

Status write_safetensors(const std::filesystem::path& path,
                         const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  const std::string where = path.string() + ": ";
  std::vector<PlannedTensor> plan;
  plan.reserve(tensors.size());
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    const std::string ctx = where + "tensor " + quote_name(name) + ": ";
    if (name == "__metadata__") return Status::InvalidArgument(ctx + "the name is reserved for the metadata");
    if (!seen.insert(name).second) return Status::InvalidArgument(ctx + "duplicate name");
    if (find_invalid_utf8(reinterpret_cast<const unsigned char*>(name.data()), name.size()) != std::string::npos) {
      return Status::InvalidArgument(ctx + "name is not valid UTF-8");
    }
    if (!t.defined()) return Status::InvalidArgument(ctx + "tensor is undefined");
    const DtypeEntry* dtype = dtype_entry(t.scalar_type());
    if (dtype == nullptr) {
      return Status::InvalidArgument(ctx + "dtype " + std::string(c10::toString(t.scalar_type())) +
                                     " has no safetensors equivalent");
    }
    if (t.is_sparse() || t.is_quantized()) return Status::InvalidArgument(ctx + "only dense tensors can be saved");
    plan.push_back({&name, &t, dtype, static_cast<uint64_t>(t.numel()) * t.element_size()});
  }
  for (const auto& [key, value] : metadata) {
    const auto bad = [](const std::string& s) {
      return find_invalid_utf8(reinterpret_cast<const unsigned char*>(s.data()), s.size()) != std::string::npos;
    };
    if (bad(key) || bad(value)) return Status::InvalidArgument(where + "metadata " + quote_name(key) + " is not valid UTF-8");
  }
  // Rust's prepare(): descending dtype (enum order), then name (byte order).
  std::sort(plan.begin(), plan.end(), [](const PlannedTensor& a, const PlannedTensor& b) {
    return a.dtype->rank != b.dtype->rank ? a.dtype->rank > b.dtype->rank : *a.name < *b.name;
  });

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      first = false;
      append_json_string(header, key);
      header += ':';
      append_json_string(header, value);
    }
    header += '}';
  }
  uint64_t offset = 0;
  for (const PlannedTensor& p : plan) {
    if (header.size() > 1) header += ',';
    append_json_string(header, *p.name);
    header += ":{\"dtype\":\"";
    header += p.dtype->name;
    header += "\",\"shape\":[";
    const auto sizes = p.tensor->sizes();
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (i) header += ',';
      header += std::to_string(sizes[i]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + p.size_bytes) + "]}";
    offset += p.size_bytes;
  }
  header += '}';
  header.resize((header.size() + 7) / 8 * 8, ' ');  // the Rust crate pads to 8 so the data area stays aligned
  if (header.size() > kMaxHeaderBytes) return Status::InvalidArgument(where + "header exceeds the 100 MB limit");

  StatusOr<AtomicFileWriter> writer = AtomicFileWriter::create(path);
  if (!writer.ok()) return writer.status();
  AtomicFileWriter& w = writer.value();
  const uint64_t header_len = header.size();
  if (Status s = w.write(&header_len, 8); !s.ok()) return s;
  if (Status s = w.write(header); !s.ok()) return s;
  for (const PlannedTensor& p : plan) {
    if (p.size_bytes == 0) continue;
    at::Tensor t = *p.tensor;  // one tensor on the host at a time
    if (!t.device().is_cpu()) t = t.to(at::kCPU);
    t = t.contiguous();
    if (t.is_neg()) t = t.resolve_neg();
    if (t.is_conj()) t = t.resolve_conj();
    if (Status s = w.write(t.data_ptr(), p.size_bytes); !s.ok()) return s;
  }
  return w.commit();
}

namespace {

// Python's json.dumps string escaping with ensure_ascii=True: non-ASCII as \uXXXX (UTF-16 surrogate pairs).
void append_python_json_string(std::string& out, const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  auto u16 = [&](uint32_t v) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(v >> shift) & 0xF];
  };
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7F) {
            u16(c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;  // names were validated as UTF-8 by the shard writer
    uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      u16(0xD800 + (cp >> 10));
      u16(0xDC00 + (cp & 0x3FF));
    } else {
      u16(cp);
    }
    i += len;
  }
  out += '"';
}

std::string shard_file_name(size_t index, size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buf;
}

// model.safetensors, model.safetensors.index.json and model-NNNNN-of-NNNNN.safetensors: what an earlier save left.
bool is_checkpoint_file_name(const std::string& name) {
  if (name == "model.safetensors" || name == "model.safetensors.index.json") return true;
  return name.size() == std::string("model-00001-of-00002.safetensors").size() && name.rfind("model-", 0) == 0 &&
         name.compare(11, 4, "-of-") == 0 && ends_with(name, ".safetensors");
}

Status make_folders(const std::filesystem::path& folder) {
  if (folder.empty() || folder_exists(folder)) return Status::Ok();
  if (folder.has_parent_path() && folder.parent_path() != folder) {
    if (Status s = make_folders(folder.parent_path()); !s.ok()) return s;
  }
  if (::mkdir(folder.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::IoError("cannot create folder " + folder.string() + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

Status write_sharded_checkpoint(const std::filesystem::path& folder,
                                const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                uint64_t max_shard_bytes) {
  // huggingface_hub's split_state_dict_into_shards_factory, without storage de-duplication (loft copies each tensor).
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  uint64_t current_bytes = 0, total_bytes = 0, total_parameters = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i].second;
    if (!t.defined()) {
      return Status::InvalidArgument(folder.string() + ": tensor " + quote_name(tensors[i].first) + ": tensor is undefined");
    }
    const uint64_t size = static_cast<uint64_t>(t.numel()) * t.element_size();
    total_bytes += size;
    total_parameters += static_cast<uint64_t>(t.numel());
    if (size > max_shard_bytes) {
      shards.push_back({i});
      continue;
    }
    if (current_bytes + size > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += size;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));

  if (Status s = make_folders(folder); !s.ok()) return s;
  std::set<std::string> written;
  const std::map<std::string, std::string> shard_metadata = {{"format", "pt"}};
  std::vector<std::pair<std::string, std::string>> weight_map;  // name -> file
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file_name = shards.size() == 1 ? "model.safetensors" : shard_file_name(s, shards.size());
    std::vector<std::pair<std::string, at::Tensor>> shard;
    for (size_t i : shards[s]) {
      shard.push_back(tensors[i]);
      weight_map.emplace_back(tensors[i].first, file_name);
    }
    if (Status st = write_safetensors(folder / file_name, shard, shard_metadata); !st.ok()) return st;
    written.insert(file_name);
  }
  if (shards.size() > 1) {
    // json.dumps(index, indent=2, sort_keys=True) + "\n", as transformers writes it.
    std::sort(weight_map.begin(), weight_map.end());
    std::string text = "{\n  \"metadata\": {\n    \"total_parameters\": " + std::to_string(total_parameters) +
                       ",\n    \"total_size\": " + std::to_string(total_bytes) + "\n  },\n  \"weight_map\": {";
    for (size_t i = 0; i < weight_map.size(); ++i) {
      text += i ? ",\n    " : "\n    ";
      append_python_json_string(text, weight_map[i].first);
      text += ": ";
      append_python_json_string(text, weight_map[i].second);
    }
    text += weight_map.empty() ? "}\n}\n" : "\n  }\n}\n";
    if (Status st = write_file_atomically(folder / "model.safetensors.index.json", text); !st.ok()) return st;
    written.insert("model.safetensors.index.json");
  }
  // Remove what an earlier save into this folder left behind, so readers never mix two checkpoints.
  if (DIR* dir = ::opendir(folder.c_str())) {
    std::vector<std::string> stale;
    while (const dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (is_checkpoint_file_name(name) && written.count(name) == 0) stale.push_back(name);
    }
    ::closedir(dir);
    for (const std::string& name : stale) {
      if (::unlink((folder / name).c_str()) != 0 && errno != ENOENT) {
        return Status::IoError("cannot remove stale " + (folder / name).string() + ": " + std::strerror(errno));
      }
    }
  }
  return Status::Ok();
}

}  // namespace loft
