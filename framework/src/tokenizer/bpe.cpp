// Byte-level BPE merge loops and the merge map.
#include "bpe.h"

#include <climits>
#include <queue>

namespace loft::tokenizer_detail {

void MergeMap::reserve(size_t n) {
  size_t capacity = 16;
  while (capacity < 2 * n) capacity <<= 1;
  if (capacity <= keys_.size()) return;
  std::vector<uint64_t> old_keys = std::move(keys_);
  std::vector<Merge> old_values = std::move(values_);
  keys_.assign(capacity, kEmpty);
  values_.assign(capacity, Merge{0, 0});
  mask_ = capacity - 1;
  size_ = 0;
  for (size_t i = 0; i < old_keys.size(); ++i) {
    if (old_keys[i] != kEmpty) {
      insert(static_cast<int32_t>(old_keys[i] >> 32), static_cast<int32_t>(old_keys[i] & 0xFFFFFFFFu), old_values[i]);
    }
  }
}

void MergeMap::insert(int32_t left, int32_t right, Merge merge) {
  if (2 * (size_ + 1) > keys_.size()) reserve(size_ + 1 < 8 ? 8 : 2 * (size_ + 1));
  const uint64_t key = pack(left, right);
  for (size_t slot = hash(key) & mask_;; slot = (slot + 1) & mask_) {
    if (keys_[slot] == key) {
      values_[slot] = merge;
      return;
    }
    if (keys_[slot] == kEmpty) {
      keys_[slot] = key;
      values_[slot] = merge;
      ++size_;
      return;
    }
  }
}

BpeModel::BpeModel() {
  for (int32_t& id : byte_ids_) id = -1;
}

void BpeModel::merge_short(std::vector<int32_t>& ids) const {
  const size_t n = ids.size();
  if (n < 2) return;
  // ranks[i], merged[i]: the merge of the pair (ids[i], ids[i+1]), INT_MAX when none.
  std::vector<int32_t> ranks(n - 1), merged(n - 1);
  auto lookup = [&](size_t i) {
    const MergeMap::Merge* m = merges_.find(ids[i], ids[i + 1]);
    ranks[i] = m ? m->rank : INT_MAX;
    merged[i] = m ? m->new_id : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) lookup(i);
  while (ids.size() > 1) {
    size_t best = 0;
    for (size_t i = 1; i < ranks.size(); ++i) {
      if (ranks[i] < ranks[best]) best = i;
    }
    if (ranks[best] == INT_MAX) break;
    ids[best] = merged[best];
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    ranks.erase(ranks.begin() + static_cast<std::ptrdiff_t>(best));
    merged.erase(merged.begin() + static_cast<std::ptrdiff_t>(best));
    if (best > 0) lookup(best - 1);
    if (best + 1 < ids.size()) lookup(best);
  }
}

void BpeModel::merge_long(std::vector<int32_t>& ids) const {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  struct Symbol {
    int32_t id;
    int prev, next;
    bool removed;
  };
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Symbol> symbols(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) symbols[i] = Symbol{ids[i], i - 1, i + 1 < n ? i + 1 : -1, false};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  for (int i = 0; i + 1 < n; ++i) {
    if (const MergeMap::Merge* m = merges_.find(ids[i], ids[i + 1])) queue.push({m->rank, i, m->new_id});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Skip entries made stale by an earlier merge: the pair at this position has changed.
    const MergeMap::Merge* current = merges_.find(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;
    left.id = top.new_id;
    right.removed = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeMap::Merge* m = merges_.find(symbols[left.prev].id, left.id)) {
        queue.push({m->rank, left.prev, m->new_id});
      }
    }
    if (left.next >= 0) {
      if (const MergeMap::Merge* m = merges_.find(left.id, symbols[left.next].id)) {
        queue.push({m->rank, top.pos, m->new_id});
      }
    }
  }
  ids.clear();
  for (int i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = whole_words_.find(std::string(word));
    if (it != whole_words_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kCacheMaxWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  bool previous_unk = false;
  for (char c : word) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      ids.push_back(id);
      previous_unk = false;
    } else if (unk_id_) {
      // HF: a character missing from the vocab becomes unk (fused with a preceding unk when fuse_unk); without an
      // unk token it is dropped.
      if (!(fuse_unk_ && previous_unk)) ids.push_back(*unk_id_);
      previous_unk = true;
    }
  }
  if (ids.size() <= 48) {
    merge_short(ids);
  } else {
    merge_long(ids);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::move(key), std::move(ids));
  }
}

}  // namespace loft::tokenizer_detail
