// dataset/jsonl: any JSONL file of prompt/response pairs or chat conversations, loaded whole at creation.
//
// A record is either {"<prompt_field>": "...", "<response_field>": "..."} (a user turn and an assistant turn) or
// {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]} ending with the assistant turn that
// training learns. With format = "auto" each record picks its shape: "messages" when it has that key. The
// `system` option is prepended as a system message, except to a conversation that starts with its own.
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>


#include "jsonl_records.h"
#include <fmt/format.h>

#include "loft/dataset.h"
#include "loft/plugin.h"

namespace {

using loft::jsonl::Record;

class JsonlDataset final : public loft::Dataset {
 public:
  explicit JsonlDataset(std::vector<loft::Sample> samples) : samples_(std::move(samples)) {}
  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  loft::Sample get(int64_t index) const override {
    if (index < 0 || index >= size()) {
      throw std::out_of_range(fmt::format("dataset/jsonl: index {} outside [0, {})", index, size()));
    }
    return samples_[static_cast<size_t>(index)];
  }

 private:
  std::vector<loft::Sample> samples_;
};

struct Settings {
  std::string format;  // "auto", "prompt_response", "messages"
  std::string prompt_field;
  std::string response_field;
  std::string system;
};

std::vector<loft::ChatMessage> read_messages(const Record& r) {
  const auto& list = r.value.at("messages");
  if (!list.is_array()) {
    throw std::invalid_argument(r.where() + ": field \"messages\" must be an array of {\"role\": ..., \"content\": ...} "
                             "objects, got " + loft::jsonl::describe_json_type(list));
  }
  if (list.size() < 2) {
    throw std::invalid_argument(r.where() + ": \"messages\" has " + std::to_string(list.size()) +
                             " message(s); a sample needs at least a prompt turn and the assistant turn that "
                             "training learns");
  }
  std::vector<loft::ChatMessage> messages;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& m = list[i];
    const std::string at = r.where() + ": messages[" + std::to_string(i) + "]";
    if (!m.is_object()) {
      throw std::invalid_argument(at + " must be an object {\"role\": ..., \"content\": ...}, got " +
                               loft::jsonl::describe_json_type(m));
    }
    for (const char* key : {"role", "content"}) {
      auto it = m.find(key);
      if (it == m.end()) {
        throw std::invalid_argument(at + " has no \"" + key +
                                 "\" field; each message is {\"role\": ..., \"content\": ...}");
      }
      if (!it->is_string()) {
        throw std::invalid_argument(at + ": \"" + key + "\" must be a string, got " +
                                 loft::jsonl::describe_json_type(*it) +
                                 (std::string(key) == "content" ? " (content given as a list of parts is not "
                                                                  "supported: join the text into one string)"
                                                                : ""));
      }
    }
    std::string role = m.at("role").get<std::string>();
    if (role != "system" && role != "user" && role != "assistant") {
      throw std::invalid_argument(at + ": unknown role \"" + role + "\"; roles are \"system\", \"user\" and "
                               "\"assistant\"");
    }
    messages.push_back({std::move(role), m.at("content").get<std::string>()});
  }
  if (messages.back().role != "assistant") {
    throw std::invalid_argument(r.where() + ": the last message is from \"" + messages.back().role +
                             "\"; it must be from \"assistant\" (the turn training learns). Drop trailing turns or "
                             "end the conversation with the assistant's reply");
  }
  return messages;
}

loft::Sample read_sample(const Record& r, const Settings& s) {
  const bool has_messages = r.value.contains("messages");
  const bool as_messages = s.format == "messages" || (s.format == "auto" && has_messages);
  loft::Sample sample;
  sample.fields = loft::jsonl::scalar_fields(r.value);
  if (as_messages) {
    if (!has_messages) {
      throw std::invalid_argument(r.where() + ": the record has no \"messages\" field (it has " +
                               loft::jsonl::list_keys(r.value) + "); with format = \"messages\" each line must be "
                               "{\"messages\": [{\"role\": ..., \"content\": ...}, ...]}");
    }
    sample.messages = read_messages(r);
  } else {
    const std::string hint =
        s.format == "auto"
            ? "each line needs \"" + s.prompt_field + "\" and \"" + s.response_field +
                  "\", or \"messages\"; set prompt_field / response_field in [dataset] if yours are named otherwise"
            : "set prompt_field / response_field in [dataset] to the names your records use";
    std::string prompt = loft::jsonl::required_string(r, s.prompt_field, hint);
    std::string response = loft::jsonl::required_string(r, s.response_field, hint);
    sample.messages = {{"user", std::move(prompt)}, {"assistant", std::move(response)}};
  }
  if (!s.system.empty() && sample.messages.front().role != "system") {
    sample.messages.insert(sample.messages.begin(), loft::ChatMessage{"system", s.system});
  }
  return sample;
}

std::unique_ptr<loft::Dataset> create(const loft::HostContext&, const loft::Options& o) {
  const std::string path = loft::jsonl::required_path(
      o, "a JSONL file of {\"prompt\", \"response\"} or {\"messages\": [...]} records");
  Settings s{o.string("format"), o.string("prompt_field"), o.string("response_field"), o.string("system")};
  if (s.format != "auto" && s.format != "prompt_response" && s.format != "messages") {
    throw std::invalid_argument("format = \"" + s.format + "\" is not one of \"auto\", \"prompt_response\", "
                                "\"messages\"");
  }
  if (s.prompt_field.empty() || s.response_field.empty() || s.prompt_field == s.response_field) {
    throw std::invalid_argument("prompt_field (\"" + s.prompt_field + "\") and response_field (\"" +
                                s.response_field + "\") must be two different, non-empty field names");
  }
  const int64_t limit = o.integer("limit");
  if (limit < 0) throw std::invalid_argument("limit = " + std::to_string(limit) + " must be >= 0 (0: no limit)");
  std::vector<loft::Sample> samples;
  loft::jsonl::for_each_record(path, [&](const Record& r) {
    samples.push_back(read_sample(r, s));
    return limit == 0 || static_cast<int64_t>(samples.size()) < limit;
  });
  return std::make_unique<JsonlDataset>(std::move(samples));
}

void register_plugin(loft::Registrar& registrar) { registrar.add_dataset("jsonl", &create); }

}  // namespace

LOFT_PLUGIN("dataset/jsonl", register_plugin)
