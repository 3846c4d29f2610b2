// What the host adds around the recipe's quantizer plugin ([quantizer] host keys): `skip` keeps chosen linear layers
// dense in the compute dtype, `cache_dir` saves the quantized layers once so that later runs load them instead of
// quantizing again. Plugin-agnostic: both work through the SDK's Quantizer / QuantizedLinear contract.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "loft/framework/manifest.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/recipe.h"
#include "loft/quantizer.h"
#include "loft/status.h"

namespace loft {

// ---- quantizer.skip ----

// True when skip entry `entry` names `module`: equal to it, a dotted suffix of it ("down_proj", "mlp.down_proj"), or
// "re:<regex>" (ECMAScript) matching the whole name, like peft/lora's `targets`. An invalid regex matches nothing.
bool skip_entry_matches(const std::string& entry, const std::string& module);

// The names a skip list is matched against: every linear site of `config` in layer order
// ("model.layers.0.self_attn.q_proj" ... "model.layers.N-1.mlp.down_proj"), then "lm_head".
std::vector<std::string> skippable_module_names(const Qwen2Config& config);

struct SkipResolution {
  std::set<std::string> sites;  // linear sites that stay dense ("lm_head" is never one: it is always dense)
  // Entry index -> what is wrong and how to fix it ("names no module of the model (did you mean ...?)", bad regex).
  std::vector<std::pair<size_t, std::string>> problems;
};
SkipResolution resolve_quantizer_skip(const std::vector<std::string>& entries, const Qwen2Config& config);

// One diagnostic per quantizer.skip entry of `recipe` that names no module of its model, located at that entry.
// The model is model.path's config.json (relative to the recipe's folder, as validation resolves it). Nothing when
// the recipe has no skip list, or when config.json cannot be read (validation of the run reports that elsewhere).
std::vector<Diagnostic> check_quantizer_skip(const Recipe& recipe, const Qwen2Config* config);

// A frozen dense weight (copied, contiguous, `dtype`): what a skipped site holds. Its state() is {"weight"}.
std::unique_ptr<QuantizedLinear> make_dense_frozen_linear(const at::Tensor& weight, c10::ScalarType dtype);
// True for dense storage (loft::DenseLinear: a skipped site's, or everything quantizer/none makes).
bool is_dense_frozen_linear(const QuantizedLinear* linear);

// ---- quantizer.cache_dir ----

// XXH64 (Debian's libxxhash; seed 0 unless given) of a byte range: checksums in cache files and the digest in their names.
uint64_t xxh64(const void* data, std::size_t size_bytes, uint64_t seed = 0);

// A cheap identity of a Hugging Face checkpoint folder, as JSON text: config.json's hash, and for every
// *.safetensors file and model.safetensors.index.json: its name, size, modification time, the hash of its header
// (8-byte length + JSON: names, dtypes, shapes, offsets) and the hash of 16 evenly spaced 4 KiB samples of its bytes.
// Reads well under a MiB whatever the model size. Any rewrite of the weights changes the size, time, header or samples,
// so a cache never matches another checkpoint; copying the folder elsewhere (new times) only costs one re-quantization.
StatusOr<std::string> checkpoint_fingerprint(const std::filesystem::path& model_dir);

// "quantizer/int8 0.1.0 libloft_quantizer_int8.so size N mtime_ns T": a rebuilt plugin counts as another quantizer.
std::string plugin_build_identity(const PluginManifest& manifest);

// Everything that decides the quantized states of a model. Two builds share a cache file only if all of it is equal.
struct QuantizedCacheInputs {
  std::string checkpoint;                      // checkpoint_fingerprint(model.path)
  std::string quantizer;                       // "quantizer/<name> <version>" + its library's size and time
  std::map<std::string, std::string> options;  // the plugin's own options as TOML values (host keys excluded)
  std::string dtype;                           // compute dtype ("BFloat16")
  std::string device_type;                     // "cpu", "cuda"
  std::vector<std::string> skipped_sites;      // sorted
};

struct QuantizedCacheKey {
  std::string description;  // JSON of the inputs: stored in the file and compared byte for byte when loading
  std::string digest;       // 16 hex digits of xxh64(description): part of the file name
};
QuantizedCacheKey make_quantized_cache_key(const QuantizedCacheInputs& inputs);

// <cache_dir>/<model folder name>.<quantizer name>.<digest>.safetensors
std::filesystem::path quantized_cache_file(const std::filesystem::path& cache_dir, const std::filesystem::path& model_dir,
                                           const std::string& quantizer_name, const QuantizedCacheKey& key);

// Saved states by site ("model.layers.0.mlp.up_proj" -> {"weight": ..., "absmax": ...}), read-only CPU views of the
// mapped file (copy before writing into them).
using QuantizedStates = std::map<std::string, std::map<std::string, at::Tensor>>;

// Writes every site's state() as "<site>.<state key>" into one safetensors file, atomically (the folder is created),
// with the key's description, the site list and one xxh64 per tensor in its metadata.
Status write_quantized_cache(const std::filesystem::path& file, const QuantizedCacheKey& key,
                             const std::vector<std::pair<std::string, const QuantizedLinear*>>& sites);

// Reads a cache file written for `key` holding exactly `sites`. Any difference (truncated or corrupt file, other
// format or key, a checksum, a missing or unexpected site) is an error saying what, never a partial result.
StatusOr<QuantizedStates> read_quantized_cache(const std::filesystem::path& file, const QuantizedCacheKey& key,
                                               const std::set<std::string>& sites);

// The frozen linears of one model build: skipped sites dense, the others loaded from the cache when it holds them,
// else quantized (and then saved to the cache). Logs through spdlog what it did. Not thread-safe.
class FrozenLinearBuilder {
 public:
  FrozenLinearBuilder(const Quantizer& quantizer, std::string quantizer_name, c10::ScalarType dtype,
                      c10::Device device, std::set<std::string> skipped_sites);

  // Uses `file` as the cache of the sites `quantized_sites` (every linear site not skipped). An absent file is a
  // miss; an unusable one is a warning naming it and the reason, then a miss (the file is rewritten by finish()).
  void use_cache(const std::filesystem::path& file, QuantizedCacheKey key, std::set<std::string> quantized_sites);

  // ModelOptions::stored_linear: a cached site's storage rebuilt through Quantizer::load(), or null.
  std::unique_ptr<QuantizedLinear> stored(const std::string& site, int64_t out_features, int64_t in_features);
  // ModelOptions::make_linear: dense for skipped sites, else quantize(); NaN/Inf throws (the site, the skip fix).
  std::unique_ptr<QuantizedLinear> make(const at::Tensor& weight, const std::string& site);

  // After the model is built: writes the cache if it was missed (a failure is a warning: the run goes on), releases
  // the mapped file, and logs one summary line (sites quantized / loaded / dense, their bytes).
  void finish(const std::vector<const LinearSite*>& sites);

  int64_t quantized_count() const { return quantized_; }
  int64_t loaded_count() const { return loaded_; }
  int64_t dense_count() const { return dense_; }

 private:
  const Quantizer& quantizer_;
  std::string quantizer_name_;
  c10::ScalarType dtype_;
  c10::Device device_;
  std::set<std::string> skipped_;
  std::filesystem::path cache_file_;
  QuantizedCacheKey key_;
  QuantizedStates cached_;
  bool write_cache_ = false;
  int64_t quantized_ = 0, loaded_ = 0, dense_ = 0;
  double quantize_s_ = 0, load_s_ = 0;
};

}  // namespace loft
