// Right-padded collation of tokenized examples.
#include "loft/framework/batching.h"

#include <algorithm>

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

}  // namespace loft
