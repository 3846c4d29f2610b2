// Qwen2Config from a Hugging Face config.json: required fields, types, head-dimension consistency, and the features
// loft does not implement (sliding-window layers, RoPE scaling, other activations) refused with a one-line reason.
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "loft/framework/qwen2.h"

namespace loft {
namespace {

using nlohmann::json;

// Field readers: a missing or mistyped field becomes a Status naming the source and the field.
class FieldReader {
 public:
  FieldReader(const json& root, std::string source) : root_(root), source_(std::move(source)) {}

  Status error() const { return error_; }
  bool failed() const { return !error_.ok(); }

  int64_t required_int(const char* key) {
    if (failed()) return 0;
    auto it = root_.find(key);
    if (it == root_.end() || it->is_null()) {
      fail(fmt::format("{}: field '{}' is missing (a Qwen2 config.json needs it)", source_, key));
      return 0;
    }
    return as_int(*it, key);
  }
  int64_t optional_int(const char* key, int64_t fallback) {
    if (failed()) return fallback;
    auto it = root_.find(key);
    if (it == root_.end() || it->is_null()) return fallback;
    return as_int(*it, key);
  }
  std::optional<int64_t> nullable_int(const char* key) {
    if (failed()) return std::nullopt;
    auto it = root_.find(key);
    if (it == root_.end() || it->is_null()) return std::nullopt;
    return as_int(*it, key);
  }
  double optional_number(const json& obj, const char* key, double fallback, const std::string& path) {
    if (failed()) return fallback;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_number()) {
      fail(fmt::format("{}: field '{}' must be a number, got {} ({})", source_, path, it->dump(), it->type_name()));
      return fallback;
    }
    return it->get<double>();
  }
  double optional_number(const char* key, double fallback) { return optional_number(root_, key, fallback, key); }
  bool optional_bool(const char* key, bool fallback) {
    if (failed()) return fallback;
    auto it = root_.find(key);
    if (it == root_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) {
      fail(fmt::format("{}: field '{}' must be true or false, got {} ({})", source_, key, it->dump(), it->type_name()));
      return fallback;
    }
    return it->get<bool>();
  }
  std::string optional_string(const char* key, const std::string& fallback) {
    if (failed()) return fallback;
    auto it = root_.find(key);
    if (it == root_.end() || it->is_null()) return fallback;
    if (!it->is_string()) {
      fail(fmt::format("{}: field '{}' must be a string, got {} ({})", source_, key, it->dump(), it->type_name()));
      return fallback;
    }
    return it->get<std::string>();
  }
  // A number, a list of numbers, or null.
  std::vector<int64_t> int_or_list(const char* key) {
    std::vector<int64_t> out;
    if (failed()) return out;
    auto it = root_.find(key);
    if (it == root_.end() || it->is_null()) return out;
    if (it->is_array()) {
      for (const auto& v : *it) out.push_back(as_int(v, key));
    } else {
      out.push_back(as_int(*it, key));
    }
    return out;
  }
  void fail(std::string message) {
    if (!failed()) error_ = Status::InvalidArgument(std::move(message));
  }

 private:
  int64_t as_int(const json& v, const char* key) {
    // JSON writers may emit 72.0 for an integer; accept integral floats, refuse anything else.
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
    }
    fail(fmt::format("{}: field '{}' must be an integer, got {} ({})", source_, key, v.dump(), v.type_name()));
    return 0;
  }

  const json& root_;
  std::string source_;
  Status error_;
};

// Which layers slide, by transformers 5.x's Qwen2Config: the window exists only when use_sliding_window is true
// (sliding_window defaults to 4096 when absent, null means none); an explicit layer_types list decides per layer
// ("attention" is the legacy name of "full_attention"); without one, layer i slides iff the window exists and
// i >= max_window_layers (default 28). loft runs full attention only: a config whose every layer is full attention
// is accepted whatever its sliding-window fields say; the first layer that is not is refused.
void check_attention_layer_types(const json& root, int64_t layers, const std::string& source, FieldReader& r) {
  if (r.failed()) return;
  const bool use_window = r.optional_bool("use_sliding_window", false);
  std::optional<int64_t> window;
  if (use_window) window = root.contains("sliding_window") ? r.nullable_int("sliding_window") : 4096;
  const int64_t max_window_layers = r.optional_int("max_window_layers", 28);
  if (r.failed()) return;
  const std::string full_only = "loft implements full attention only";

  auto it = root.find("layer_types");
  if (it == root.end() || it->is_null()) {
    if (window && max_window_layers < layers) {
      r.fail(fmt::format("{}: use_sliding_window is true with sliding_window = {} and max_window_layers = {}, so layers "
                         "{}..{} use sliding-window attention (transformers slides layer i when i >= "
                         "max_window_layers); {} (max_window_layers >= num_hidden_layers = {}, or use_sliding_window "
                         "= false, means full attention everywhere)",
                         source, *window, max_window_layers, std::max<int64_t>(max_window_layers, 0), layers - 1,
                         full_only, layers));
    }
    return;
  }
  if (!it->is_array() || static_cast<int64_t>(it->size()) != layers) {
    r.fail(fmt::format("{}: field 'layer_types' must be a list of num_hidden_layers = {} strings, got {}", source,
                       layers, it->dump()));
    return;
  }
  for (int64_t i = 0; i < layers; ++i) {
    const json& t = (*it)[static_cast<size_t>(i)];
    const std::string type = t.is_string() ? t.get<std::string>() : t.dump();
    if (type == "full_attention" || type == "attention") continue;
    if (type == "sliding_attention" && window) {
      r.fail(fmt::format("{}: layer_types[{}] is \"sliding_attention\" with sliding_window = {}; {} (use a config "
                         "whose layer_types are all \"full_attention\")",
                         source, i, *window, full_only));
    } else if (type == "sliding_attention") {
      r.fail(fmt::format("{}: layer_types[{}] is \"sliding_attention\" but there is no window (use_sliding_window is "
                         "false or sliding_window is null), which transformers cannot run either; write "
                         "\"full_attention\"",
                         source, i));
    } else {
      r.fail(fmt::format("{}: layer_types[{}] is {}; a Qwen2 layer is \"full_attention\" ({})", source, i,
                         t.is_string() ? "\"" + type + "\"" : type, full_only));
    }
    return;
  }
}

}  // namespace

Status Qwen2Config::validate(const std::string& source) const {
  auto positive = [&](const char* field, int64_t v) -> Status {
    if (v <= 0) return Status::InvalidArgument(fmt::format("{}: field '{}' must be positive, got {}", source, field, v));
    return Status::Ok();
  };
  for (auto [field, v] : {std::pair<const char*, int64_t>{"vocab_size", vocab_size},
                          {"hidden_size", hidden_size},
                          {"intermediate_size", intermediate_size},
                          {"num_hidden_layers", num_hidden_layers},
                          {"num_attention_heads", num_attention_heads},
                          {"num_key_value_heads", num_key_value_heads},
                          {"head_dim", head_dim},
                          {"max_position_embeddings", max_position_embeddings}}) {
    if (auto s = positive(field, v); !s.ok()) return s;
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return Status::InvalidArgument(fmt::format(
        "{}: num_attention_heads {} is not a multiple of num_key_value_heads {} (each key/value head serves a whole "
        "group of query heads)",
        source, num_attention_heads, num_key_value_heads));
  }
  if (head_dim % 2 != 0) {
    return Status::InvalidArgument(
        fmt::format("{}: head_dim {} must be even (RoPE rotates pairs of dimensions)", source, head_dim));
  }
  if (!(rms_norm_eps > 0)) {
    return Status::InvalidArgument(fmt::format("{}: field 'rms_norm_eps' must be positive, got {}", source, rms_norm_eps));
  }
  if (!(rope_theta > 0)) {
    return Status::InvalidArgument(fmt::format("{}: rope_theta must be positive, got {}", source, rope_theta));
  }
  if (pad_token_id && (*pad_token_id < 0 || *pad_token_id >= vocab_size)) {
    return Status::InvalidArgument(
        fmt::format("{}: pad_token_id {} is outside the vocabulary [0, {})", source, *pad_token_id, vocab_size));
  }
  return Status::Ok();
}

StatusOr<Qwen2Config> parse_qwen2_config(const std::string& json_text, const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}: not valid JSON: {}", source, e.what()));
  }
  if (!root.is_object()) return Status::InvalidArgument(fmt::format("{}: expected a JSON object", source));

  FieldReader r(root, source);
  Qwen2Config c;
  const std::string model_type = r.optional_string("model_type", "qwen2");
  if (!r.failed() && model_type != "qwen2") {
    r.fail(fmt::format("{}: model_type is \"{}\"; loft implements \"qwen2\" (Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen)",
                       source, model_type));
  }
  c.vocab_size = r.required_int("vocab_size");
  c.hidden_size = r.required_int("hidden_size");
  c.intermediate_size = r.required_int("intermediate_size");
  c.num_hidden_layers = r.required_int("num_hidden_layers");
  c.num_attention_heads = r.required_int("num_attention_heads");
  // transformers' Qwen2Config defaults these when absent.
  c.num_key_value_heads = r.optional_int("num_key_value_heads", c.num_attention_heads);
  c.rms_norm_eps = r.optional_number("rms_norm_eps", 1e-6);
  c.max_position_embeddings = r.optional_int("max_position_embeddings", 32768);
  c.tie_word_embeddings = r.optional_bool("tie_word_embeddings", false);
  c.initializer_range = r.optional_number("initializer_range", 0.02);
  c.pad_token_id = r.nullable_int("pad_token_id");
  c.bos_token_id = r.nullable_int("bos_token_id");
  c.eos_token_ids = r.int_or_list("eos_token_id");
  c.torch_dtype = r.optional_string("torch_dtype", "");
  if (c.torch_dtype.empty()) c.torch_dtype = r.optional_string("dtype", "");

  // head_dim: explicit, else hidden_size / num_attention_heads, which must then divide evenly.
  if (!r.failed() && c.num_attention_heads > 0) {
    auto explicit_head_dim = r.nullable_int("head_dim");
    if (explicit_head_dim) {
      c.head_dim = *explicit_head_dim;
    } else if (c.hidden_size % c.num_attention_heads != 0) {
      r.fail(fmt::format("{}: hidden_size {} is not divisible by num_attention_heads {}; fix the head count or set "
                         "head_dim",
                         source, c.hidden_size, c.num_attention_heads));
    } else {
      c.head_dim = c.hidden_size / c.num_attention_heads;
    }
  }

  // RoPE: transformers 5.x writes "rope_parameters": {"rope_type", "rope_theta"}; older files a top-level
  // "rope_theta" and an optional "rope_scaling". Only the default (unscaled) RoPE is implemented.
  c.rope_theta = r.optional_number("rope_theta", 10000.0);
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (r.failed()) break;
    auto it = root.find(key);
    if (it == root.end() || it->is_null()) continue;
    if (!it->is_object()) {
      r.fail(fmt::format("{}: field '{}' must be an object, got {}", source, key, it->dump()));
      break;
    }
    std::string type = "default";
    for (const char* type_key : {"rope_type", "type"}) {
      auto t = it->find(type_key);
      if (t != it->end() && t->is_string()) type = t->get<std::string>();
    }
    if (type != "default") {
      r.fail(fmt::format("{}: {}.rope_type \"{}\" is not supported (loft implements the default RoPE only)", source,
                         key, type));
      break;
    }
    c.rope_theta = r.optional_number(*it, "rope_theta", c.rope_theta, std::string(key) + ".rope_theta");
  }

  const std::string act = r.optional_string("hidden_act", "silu");
  if (!r.failed() && act != "silu") {
    r.fail(fmt::format("{}: hidden_act \"{}\" is not supported (Qwen2 uses \"silu\")", source, act));
  }
  check_attention_layer_types(root, c.num_hidden_layers, source, r);
  const double attention_dropout = r.optional_number("attention_dropout", 0.0);
  if (!r.failed() && attention_dropout != 0.0) {
    r.fail(fmt::format("{}: attention_dropout {} is not supported (loft's attention has no dropout); set it to 0.0",
                       source, attention_dropout));
  }
  if (r.failed()) return r.error();
  if (auto s = c.validate(source); !s.ok()) return s;
  return c;
}

StatusOr<Qwen2Config> read_qwen2_config(const std::filesystem::path& config_json) {
  std::ifstream in(config_json, std::ios::binary);
  if (!in) {
    return Status::NotFound(fmt::format("{}: cannot open (a Hugging Face model folder holds config.json)",
                                        config_json.string()));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_qwen2_config(text.str(), config_json.string());
}

const char* attention_backend_name(AttentionBackend backend) {
  switch (backend) {
    case AttentionBackend::kAuto: return "auto";
    case AttentionBackend::kMath: return "math";
    case AttentionBackend::kFlash: return "flash";
    case AttentionBackend::kEfficient: return "efficient";
    case AttentionBackend::kCudnn: return "cudnn";
  }
  return "?";
}

}  // namespace loft
