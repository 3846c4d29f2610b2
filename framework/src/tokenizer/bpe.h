// Byte-level BPE in id space: a word's bytes start as the ids of their byte tokens, then the adjacent pair with the
// lowest merge rank (leftmost on ties) is merged until no pair has a merge, exactly as HF's BPE `merge_all`.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace loft::tokenizer_detail {

// Open-addressing map from an id pair to its merge (rank, merged id). Read-only after building; lookups are
// lock-free and about one cache miss.
class MergeMap {
 public:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  void reserve(size_t n);
  // A later merge of the same pair replaces the earlier one (HF's HashMap insert does the same).
  void insert(int32_t left, int32_t right, Merge merge);
  const Merge* find(int32_t left, int32_t right) const {
    if (keys_.empty()) return nullptr;
    const uint64_t key = pack(left, right);
    for (size_t slot = hash(key) & mask_;; slot = (slot + 1) & mask_) {
      if (keys_[slot] == key) return &values_[slot];
      if (keys_[slot] == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pack(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  std::vector<uint64_t> keys_;
  std::vector<Merge> values_;
  size_t mask_ = 0, size_ = 0;
};

class BpeModel {
 public:
  BpeModel();

  void set_byte_id(unsigned char byte, int32_t id) { byte_ids_[byte] = id; }
  int32_t byte_id(unsigned char byte) const { return byte_ids_[byte]; }
  MergeMap& merges() { return merges_; }
  // ignore_merges (HF): a word that is itself a vocabulary token is emitted whole, before any merging.
  void set_whole_words(std::unordered_map<std::string, int32_t> whole_words) {
    whole_words_ = std::move(whole_words);
    ignore_merges_ = true;
  }
  void set_unk(std::optional<int32_t> unk_id, bool fuse_unk) {
    unk_id_ = unk_id;
    fuse_unk_ = fuse_unk;
  }

  // Appends the ids of one pre-tokenized word (raw bytes). Thread-safe.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  // The merge loops, exposed for tests: both give the same result; encode_word picks by length.
  void merge_short(std::vector<int32_t>& ids) const;  // O(n^2) scan, fastest for short words
  void merge_long(std::vector<int32_t>& ids) const;   // priority queue, O(n log n)

 private:
  int32_t byte_ids_[256];
  MergeMap merges_;
  bool ignore_merges_ = false;
  std::unordered_map<std::string, int32_t> whole_words_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;

  // Word -> ids cache (HF keeps one too). Bounded; guarded by a mutex because encode() is const and shared.
  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kCacheMaxWordBytes = 64;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace loft::tokenizer_detail
