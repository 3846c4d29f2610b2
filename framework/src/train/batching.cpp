// Right-padded collation of tokenized examples, one per row or packed several per row.
#include "loft/framework/batching.h"

#include <algorithm>
#include <limits>

#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>

#include "loft/framework/chunked_loss.h"

namespace loft {

Batch collate(const std::vector<const TokenizedExample*>& examples, int64_t pad_id) {
  TORCH_CHECK(!examples.empty(), "collate: empty batch");
  size_t max_len = 0;
  for (const auto* e : examples) {
    TORCH_CHECK(e->input_ids.size() == e->labels.size() && !e->input_ids.empty(),
                "collate: an example has ", e->input_ids.size(), " ids and ", e->labels.size(), " labels");
    max_len = std::max(max_len, e->input_ids.size());
  }
  const int64_t b = static_cast<int64_t>(examples.size()), s = static_cast<int64_t>(max_len);
  std::vector<int64_t> ids(b * s, pad_id), labels(b * s, kIgnoreLabel), lengths(b);
  Batch batch;
  for (int64_t i = 0; i < b; ++i) {
    const auto& e = *examples[i];
    lengths[i] = static_cast<int64_t>(e.input_ids.size());
    std::copy(e.input_ids.begin(), e.input_ids.end(), ids.begin() + i * s);
    std::copy(e.labels.begin(), e.labels.end(), labels.begin() + i * s);
    // The first position predicts nothing (its label is never a target after the shift).
    for (size_t j = 1; j < e.labels.size(); ++j) batch.label_tokens += e.labels[j] != kIgnoreLabel;
  }
  auto opts = at::TensorOptions().dtype(at::kLong);
  batch.input_ids = at::from_blob(ids.data(), {b, s}, opts).clone();
  batch.labels = at::from_blob(labels.data(), {b, s}, opts).clone();
  batch.lengths = at::from_blob(lengths.data(), {b}, opts).clone();
  return batch;
}

Batch collate_packed(const std::vector<const TokenizedExample*>& examples, int64_t pad_id, int64_t row_length) {
  TORCH_CHECK(!examples.empty(), "collate: empty batch");
  TORCH_CHECK(row_length > 0, "collate: row length must be positive, got ", row_length);
  // First fit: each example goes into the first row with room, so the order within a row is the data order.
  std::vector<std::vector<const TokenizedExample*>> rows;
  std::vector<int64_t> used;
  for (const auto* e : examples) {
    const auto n = static_cast<int64_t>(e->input_ids.size());
    TORCH_CHECK(n > 0 && e->labels.size() == e->input_ids.size(), "collate: an example has ", n, " ids and ",
                e->labels.size(), " labels");
    TORCH_CHECK(n <= row_length, "collate: an example of ", n, " tokens does not fit a packed row of ", row_length,
                "; raise train.pack_length or lower dataset.max_length");
    size_t r = 0;
    while (r < rows.size() && used[r] + n > row_length) ++r;
    if (r == rows.size()) {
      rows.emplace_back();
      used.push_back(0);
    }
    rows[r].push_back(e);
    used[r] += n;
  }
  const auto b = static_cast<int64_t>(rows.size());
  const int64_t s = *std::max_element(used.begin(), used.end());
  std::vector<int64_t> ids(b * s, pad_id), labels(b * s, kIgnoreLabel), positions(b * s, 0), lengths(b);
  std::vector<int32_t> cu{0};
  Batch batch;
  for (int64_t i = 0; i < b; ++i) {
    int64_t at = i * s;
    for (const auto* e : rows[static_cast<size_t>(i)]) {
      const auto n = static_cast<int64_t>(e->input_ids.size());
      std::copy(e->input_ids.begin(), e->input_ids.end(), ids.begin() + at);
      std::copy(e->labels.begin() + 1, e->labels.end(), labels.begin() + at + 1);
      for (int64_t j = 0; j < n; ++j) positions[at + j] = j;
      for (size_t j = 1; j < e->labels.size(); ++j) batch.label_tokens += e->labels[j] != kIgnoreLabel;
      at += n;
      cu.push_back(static_cast<int32_t>(at));
      batch.max_seqlen = std::max(batch.max_seqlen, n);
    }
    lengths[i] = used[static_cast<size_t>(i)];
    const int64_t pad = s - lengths[i];
    if (pad > 0) {  // the row's padding: its own sequence, positions continuing from 0, no labels
      for (int64_t j = 0; j < pad; ++j) positions[at + j] = j;
      cu.push_back(static_cast<int32_t>(at + pad));
      batch.max_seqlen = std::max(batch.max_seqlen, pad);
    }
  }
  TORCH_CHECK(b * s <= std::numeric_limits<int32_t>::max(), "collate: a packed batch of ", b * s,
              " tokens overflows int32 sequence offsets");
  auto opts = at::TensorOptions().dtype(at::kLong);
  batch.input_ids = at::from_blob(ids.data(), {b, s}, opts).clone();
  batch.labels = at::from_blob(labels.data(), {b, s}, opts).clone();
  batch.lengths = at::from_blob(lengths.data(), {b}, opts).clone();
  batch.position_ids = at::from_blob(positions.data(), {b, s}, opts).clone();
  batch.cu_seqlens =
      at::from_blob(cu.data(), {static_cast<int64_t>(cu.size())}, at::TensorOptions().dtype(at::kInt)).clone();
  return batch;
}

}  // namespace loft
