// Reads tokenizer.json (and tokenizer_config.json beside it) into TokenizerImpl, refusing what loft cannot run
// with a one-line message naming the file and the problem.
#include <fstream>
#include <sstream>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "loft/framework/files.h"
#include "byte_level.h"
#include "tokenizer_impl.h"

namespace loft::tokenizer_detail {
namespace {

using nlohmann::json;

// GPT-2's pre-tokenizer regex, used by ByteLevel when use_regex is true.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Thrown while parsing, turned into a Status naming the file at the top.
struct LoadError {
  std::string message;
};

[[noreturn]] void fail(std::string message) { throw LoadError{std::move(message)}; }

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string type_of(const json& node, const char* what) {
  if (!node.is_object()) fail(std::string(what) + " must be an object or null");
  auto it = node.find("type");
  if (it == node.end() || !it->is_string()) fail(std::string(what) + " has no \"type\"");
  return it->get<std::string>();
}

bool bool_or(const json& node, const char* key, bool fallback) {
  auto it = node.find(key);
  if (it == node.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(std::string("\"") + key + "\" must be true or false");
  return it->get<bool>();
}

void parse_normalizer(const json& node, std::vector<NormalizationForm>& out) {
  if (node.is_null()) return;
  const std::string type = type_of(node, "normalizer");
  if (type == "NFC") {
    out.push_back(NormalizationForm::kNFC);
  } else if (type == "NFD") {
    out.push_back(NormalizationForm::kNFD);
  } else if (type == "NFKC") {
    out.push_back(NormalizationForm::kNFKC);
  } else if (type == "NFKD") {
    out.push_back(NormalizationForm::kNFKD);
  } else if (type == "Sequence") {
    auto it = node.find("normalizers");
    if (it == node.end() || !it->is_array()) fail("normalizer Sequence has no \"normalizers\" array");
    for (const json& child : *it) parse_normalizer(child, out);
  } else {
    fail("unsupported normalizer type " + in_quotes(type) + " (loft supports NFC, NFD, NFKC, NFKD and Sequence)");
  }
}

std::unique_ptr<RegexSplitter> compile_or_fail(const std::string& pattern, const char* what) {
  std::string error;
  auto regex = RegexSplitter::compile(pattern, &error);
  if (!regex) fail(std::string(what) + " regex " + in_quotes(pattern) + " does not compile: " + error);
  return regex;
}

std::string escape_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void parse_pre_tokenizer(const json& node, std::vector<PreTokenizerStep>& out) {
  if (node.is_null()) return;
  const std::string type = type_of(node, "pre_tokenizer");
  if (type == "Sequence") {
    auto it = node.find("pretokenizers");
    if (it == node.end() || !it->is_array()) fail("pre_tokenizer Sequence has no \"pretokenizers\" array");
    for (const json& child : *it) parse_pre_tokenizer(child, out);
    return;
  }
  if (!out.empty() && out.back().kind == PreTokenizerStep::Kind::kByteLevel) {
    fail("pre_tokenizer " + in_quotes(type) + " after ByteLevel is not supported (ByteLevel must be the last step)");
  }
  PreTokenizerStep step;
  if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    auto pattern = node.find("pattern");
    if (pattern == node.end() || !pattern->is_object()) fail("Split pre_tokenizer has no \"pattern\" object");
    if (pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
      step.regex = compile_or_fail((*pattern)["Regex"].get<std::string>(), "Split");
    } else if (pattern->contains("String") && (*pattern)["String"].is_string()) {
      step.regex = compile_or_fail(escape_literal((*pattern)["String"].get<std::string>()), "Split");
    } else {
      fail("Split pre_tokenizer pattern must be {\"Regex\": ...} or {\"String\": ...}");
    }
    const std::string behavior = node.value("behavior", std::string("Isolated"));
    if (behavior == "Isolated") {
      step.behavior = SplitBehavior::kIsolated;
    } else if (behavior == "Removed") {
      step.behavior = SplitBehavior::kRemoved;
    } else {
      fail("unsupported Split behavior " + in_quotes(behavior) + " (loft supports Isolated and Removed)");
    }
    if (bool_or(node, "invert", false)) fail("Split pre_tokenizer with \"invert\": true is not supported");
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = bool_or(node, "add_prefix_space", true);
    if (bool_or(node, "use_regex", true)) step.regex = compile_or_fail(kGpt2Pattern, "ByteLevel");
  } else {
    fail("unsupported pre_tokenizer type " + in_quotes(type) + " (loft supports Split, ByteLevel and Sequence)");
  }
  out.push_back(std::move(step));
}

void check_decoder(const json& node) {
  if (node.is_null()) fail("\"decoder\" is null; loft needs the ByteLevel decoder of a byte-level BPE tokenizer");
  const std::string type = type_of(node, "decoder");
  if (type == "Sequence") {
    auto it = node.find("decoders");
    if (it == node.end() || !it->is_array() || it->empty()) fail("decoder Sequence has no \"decoders\" array");
    for (const json& child : *it) check_decoder(child);
    return;
  }
  if (type != "ByteLevel") fail("unsupported decoder type " + in_quotes(type) + " (loft supports ByteLevel)");
}

std::optional<std::string> optional_string(const json& node, const char* key) {
  auto it = node.find(key);
  if (it == node.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) fail(std::string("\"") + key + "\" must be a string or null");
  return it->get<std::string>();
}

// A token name in tokenizer_config.json: "text", {"content": "text", ...} or null.
std::optional<std::string> config_token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  fail(std::string("\"") + key + "\" must be a string, an object with \"content\", or null");
}

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open the file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return json::parse(buffer.str());
  } catch (const json::parse_error& e) {
    fail(std::string("malformed JSON: ") + e.what());
  }
}

void load_model(const json& root, TokenizerImpl& impl, std::unordered_map<std::string, int32_t>& vocab) {
  auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) fail("no \"model\" object (is this a tokenizer.json?)");
  const json& model = *model_it;
  std::string type;
  if (model.contains("type")) {
    if (!model["type"].is_string()) fail("\"model.type\" must be a string");
    type = model["type"].get<std::string>();
  } else if (model.contains("merges")) {
    type = "BPE";  // HF infers the model from its fields when "type" is missing
  }
  if (type != "BPE") {
    fail("unsupported model type " + in_quotes(type.empty() ? "(none)" : type) +
         " (loft reads byte-level BPE tokenizers, such as Qwen2's)");
  }
  auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) fail("\"model.vocab\" is missing or not an object");
  vocab.reserve(vocab_it->size());
  for (auto it = vocab_it->begin(); it != vocab_it->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX) {
      fail("vocab entry " + in_quotes(it.key()) + " has id " + it.value().dump() + " (must be an integer in [0, 2^31))");
    }
    vocab[it.key()] = static_cast<int32_t>(it.value().get<int64_t>());
  }

  if (auto d = model.find("dropout"); d != model.end() && !d->is_null()) {
    if (!d->is_number() || d->get<double>() != 0.0) fail("BPE dropout is not supported (set \"dropout\": null)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto value = optional_string(model, key);
    if (value && !value->empty()) fail(std::string("BPE \"") + key + "\" is not supported by byte-level BPE");
  }
  if (bool_or(model, "byte_fallback", false)) fail("BPE \"byte_fallback\": true is not supported");
  std::optional<int32_t> unk_id;
  if (const auto unk = optional_string(model, "unk_token")) {
    auto it = vocab.find(*unk);
    if (it == vocab.end()) fail("unk_token " + in_quotes(*unk) + " is not in the vocab");
    unk_id = it->second;
  }
  impl.bpe.set_unk(unk_id, bool_or(model, "fuse_unk", false));

  const ByteLevelTable& table = ByteLevelTable::get();
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(table.byte_to_utf8(static_cast<unsigned char>(b)));
    if (it != vocab.end()) impl.bpe.set_byte_id(static_cast<unsigned char>(b), it->second);
  }

  auto merges_it = model.find("merges");
  if (merges_it == model.end() || !merges_it->is_array()) fail("\"model.merges\" is missing or not an array");
  MergeMap& merges = impl.bpe.merges();
  merges.reserve(merges_it->size());
  int32_t rank = 0;
  for (const json& merge : *merges_it) {
    std::string left, right;
    if (merge.is_string()) {
      const std::string& line = merge.get_ref<const std::string&>();
      const size_t space = line.find(' ');
      if (space == std::string::npos) fail("merge #" + std::to_string(rank) + " " + in_quotes(line) + " is not \"left right\"");
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      fail("merge #" + std::to_string(rank) + " is " + merge.dump() + " (must be \"left right\" or [left, right])");
    }
    const std::string what = "merge #" + std::to_string(rank) + " (" + in_quotes(left) + " " + in_quotes(right) + ")";
    auto l = vocab.find(left);
    if (l == vocab.end()) fail(what + " names " + in_quotes(left) + ", which is not in the vocab");
    auto r = vocab.find(right);
    if (r == vocab.end()) fail(what + " names " + in_quotes(right) + ", which is not in the vocab");
    auto m = vocab.find(left + right);
    if (m == vocab.end()) fail(what + " makes " + in_quotes(left + right) + ", which is not in the vocab");
    merges.insert(l->second, r->second, MergeMap::Merge{rank, m->second});
    ++rank;
  }

  if (bool_or(model, "ignore_merges", false)) {
    std::unordered_map<std::string, int32_t> whole_words;
    whole_words.reserve(vocab.size());
    for (const auto& [token, id] : vocab) {
      if (auto bytes = table.token_to_bytes(token)) whole_words.emplace(std::move(*bytes), id);
    }
    impl.bpe.set_whole_words(std::move(whole_words));
  }
}

// HF re-derives added-token ids while loading (AddedVocabulary::add_tokens): a content already in the vocab keeps that
// id, otherwise it takes the next id after the vocab and the added tokens so far. The "id" in the file is only checked
// by HF (a warning), so loft follows the derivation too.
void load_added_tokens(const json& root, TokenizerImpl& impl, const std::unordered_map<std::string, int32_t>& vocab) {
  auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return;
  if (!it->is_array()) fail("\"added_tokens\" must be an array");
  std::unordered_map<std::string, int32_t> added_ids;
  std::optional<int32_t> max_added;
  const auto vocab_count = static_cast<int32_t>(vocab.size());
  size_t index = 0;
  for (const json& node : *it) {
    const std::string where = "added_tokens[" + std::to_string(index++) + "]";
    if (!node.is_object() || !node.contains("content") || !node["content"].is_string()) {
      fail(where + " has no \"content\" string");
    }
    AddedTokenInfo token;
    token.content = node["content"].get<std::string>();
    if (token.content.empty()) continue;
    token.single_word = bool_or(node, "single_word", false);
    token.lstrip = bool_or(node, "lstrip", false);
    token.rstrip = bool_or(node, "rstrip", false);
    token.special = bool_or(node, "special", false);
    token.normalized = bool_or(node, "normalized", !token.special);
    if (auto a = added_ids.find(token.content); a != added_ids.end()) {
      token.id = a->second;
    } else if (auto v = vocab.find(token.content); v != vocab.end()) {
      token.id = v->second;
    } else if (!max_added) {
      token.id = vocab_count;
    } else {
      token.id = (*max_added >= vocab_count || vocab_count == 0) ? *max_added + 1 : vocab_count;
    }
    added_ids[token.content] = token.id;
    if (!max_added || token.id > *max_added) max_added = token.id;
    // The same content listed twice: the later entry replaces the earlier one.
    bool replaced = false;
    for (AddedTokenInfo& existing : impl.added_tokens) {
      if (existing.content == token.content) {
        existing = token;
        replaced = true;
      }
    }
    if (!replaced) impl.added_tokens.push_back(std::move(token));
  }
}

void build_tables(TokenizerImpl& impl, std::unordered_map<std::string, int32_t>& vocab) {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) max_id = std::max(max_id, id);
  for (const AddedTokenInfo& t : impl.added_tokens) max_id = std::max(max_id, t.id);
  const size_t n = static_cast<size_t>(max_id + 1);
  impl.id_to_token.assign(n, std::string());
  impl.id_known.assign(n, 0);
  impl.id_special.assign(n, 0);
  impl.id_to_bytes.assign(n, std::string());
  for (const auto& [token, id] : vocab) {
    impl.id_to_token[id] = token;
    impl.id_known[id] = 1;
  }
  std::unordered_set<std::string> special_contents;
  for (const AddedTokenInfo& t : impl.added_tokens) {
    // HF (tokenizers 0.23) spells a normalized added token by its normalized content when going from id to text.
    impl.id_to_token[t.id] = t.normalized ? impl.normalize(t.content) : t.content;
    impl.id_known[t.id] = 1;
    if (t.special) special_contents.insert(impl.id_to_token[t.id]);
  }
  const ByteLevelTable& table = ByteLevelTable::get();
  for (size_t id = 0; id < n; ++id) {
    if (!impl.id_known[id]) continue;
    const std::string& token = impl.id_to_token[id];
    // HF's ByteLevel decoder: a token whose characters are all in the byte table decodes to those bytes, any other
    // token (most added tokens) to its own UTF-8.
    auto bytes = table.token_to_bytes(token);
    impl.id_to_bytes[id] = bytes ? std::move(*bytes) : token;
    impl.id_special[id] = special_contents.count(token) ? 1 : 0;
  }
  impl.token_to_id = std::move(vocab);
  for (const AddedTokenInfo& t : impl.added_tokens) impl.token_to_id[t.content] = t.id;

  // Matchers: special tokens first, then the others (HF's trie order); normalized ones by their normalized text.
  std::vector<std::pair<std::string, const AddedTokenInfo*>> raw, normalized;
  for (int pass = 0; pass < 2; ++pass) {
    for (const AddedTokenInfo& t : impl.added_tokens) {
      if (t.special != (pass == 0)) continue;
      if (t.normalized) {
        normalized.emplace_back(impl.normalize(t.content), &t);
      } else {
        raw.emplace_back(t.content, &t);
      }
    }
  }
  impl.raw_matcher.build(std::move(raw));
  impl.normalized_matcher.build(std::move(normalized));
}

void load_config(const std::filesystem::path& config_path, TokenizerImpl& impl) {
  const json config = read_json(config_path);
  if (!config.is_object()) fail("the top level must be an object");
  auto id_of = [&](const std::optional<std::string>& name) -> std::optional<int32_t> {
    if (!name) return std::nullopt;
    auto it = impl.token_to_id.find(*name);
    if (it == impl.token_to_id.end()) return std::nullopt;
    return it->second;
  };
  const auto bos = config_token(config, "bos_token");
  impl.bos_token = bos.value_or("");
  impl.bos_id = id_of(bos);
  impl.eos_id = id_of(config_token(config, "eos_token"));
  impl.pad_id = id_of(config_token(config, "pad_token"));
}

}  // namespace

StatusOr<std::shared_ptr<TokenizerImpl>> load_tokenizer(const std::filesystem::path& tokenizer_json) {
  auto impl = std::make_shared<TokenizerImpl>();
  impl->path = tokenizer_json;
  std::filesystem::path current = tokenizer_json;
  try {
    if (!fs::is_regular_file(tokenizer_json)) {
      return Status::NotFound(tokenizer_json.string() + ": no such file (expected an HF tokenizer.json)");
    }
    const json root = read_json(tokenizer_json);
    if (!root.is_object()) fail("the top level must be an object");
    std::unordered_map<std::string, int32_t> vocab;
    load_model(root, *impl, vocab);
    load_added_tokens(root, *impl, vocab);
    parse_normalizer(root.value("normalizer", json()), impl->normalizers);
    parse_pre_tokenizer(root.value("pre_tokenizer", json()), impl->pre_tokenizer);
    if (impl->pre_tokenizer.empty() || impl->pre_tokenizer.back().kind != PreTokenizerStep::Kind::kByteLevel) {
      fail("the pre_tokenizer has no ByteLevel step: loft reads byte-level BPE tokenizers only");
    }
    check_decoder(root.value("decoder", json()));
    build_tables(*impl, vocab);

    current = tokenizer_json.parent_path() / "tokenizer_config.json";
    if (fs::is_regular_file(current)) load_config(current, *impl);
  } catch (const LoadError& e) {
    return Status::InvalidArgument(current.string() + ": " + e.message);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(current.string() + ": unexpected JSON structure: " + e.what());
  }
  return impl;
}

}  // namespace loft::tokenizer_detail
