// JSONL reading shared by dataset/jsonl and dataset/math: one JSON object per line, errors with file:line.
#include "jsonl_records.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace loft::jsonl {
namespace {

bool is_blank(const std::string& line, size_t start) {
  return line.find_first_not_of(" \t\r\n\f\v", start) == std::string::npos;
}

// nlohmann's message without its "[json.exception.parse_error.101] parse error at line 1, column 9: " preamble
// (the line is always 1 for it: it sees one line at a time), cut to a readable length.
std::string parse_error_detail(const nlohmann::json::parse_error& e) {
  std::string text = e.what();
  const size_t column = text.find(", column ");
  if (column != std::string::npos) {
    const size_t colon = text.find(": ", column);
    if (colon != std::string::npos) text = text.substr(colon + 2);
  }
  constexpr size_t kMaxChars = 240;
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

}  // namespace

std::string required_path(const Options& options, const std::string& what) {
  if (!options.has("path")) {
    throw std::invalid_argument("needs `path`: set `path = \"...\"` in the recipe's [dataset] section to " + what +
                                " (a relative path is resolved against the recipe's folder)");
  }
  const std::string& path = options.string("path");
  if (path.empty()) {
    throw std::invalid_argument("`path` is empty: set it in the recipe's [dataset] section to " + what);
  }
  return path;
}

int64_t for_each_record(const std::string& path, const std::function<bool(const Record&)>& visit) {
  // stat, not std::filesystem: libtorch.so exports its own copies of some std::filesystem functions (see
  // framework/include/loft/framework/files.h), and this library resolves against it.
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) throw std::runtime_error(path + ": " + std::strerror(errno));
    throw std::invalid_argument(path + ": no such file. Check `path` in the recipe's [dataset] section (a relative path "
                             "is resolved against the recipe's folder)");
  }
  if (S_ISDIR(info.st_mode)) {
    throw std::invalid_argument(path + " is a directory; `path` must name a JSONL file (one JSON object per line)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open for reading: " + std::strerror(errno));

  std::string line;
  int64_t line_number = 0, records = 0;
  while (std::getline(in, line)) {
    ++line_number;
    size_t start = 0;
    if (line_number == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) start = 3;  // UTF-8 byte-order mark
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (is_blank(line, start)) continue;
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line.begin() + static_cast<std::ptrdiff_t>(start), line.end());
    } catch (const nlohmann::json::parse_error& e) {
      const size_t first = line.find_first_not_of(" \t", start);
      const bool looks_like_array = line_number == 1 && first != std::string::npos && line[first] == '[';
      throw std::invalid_argument(path + ":" + std::to_string(line_number) + ":" + std::to_string(e.byte) +
                               ": malformed JSON: " + parse_error_detail(e) +
                               ". Each line must hold one complete JSON object (a record may not span lines)" +
                               (looks_like_array ? "; this file looks like one JSON array: convert it to JSONL, e.g. "
                                                   "`jq -c '.[]' in.json > out.jsonl`"
                                                 : ""));
    }
    if (!value.is_object()) {
      throw std::invalid_argument(path + ":" + std::to_string(line_number) + ": expected a JSON object {...}, got " +
                               describe_json_type(value) + ". Each line must hold one JSON object");
    }
    ++records;
    if (!visit(Record{value, path, line_number})) return records;
  }
  if (in.bad()) throw std::runtime_error(path + ": read error after line " + std::to_string(line_number));
  if (records == 0) {
    throw std::invalid_argument(path + ": the file has no records (" +
                             (line_number == 0 ? std::string("it is empty") : "it holds only blank lines") +
                             "); a JSONL file holds one JSON object per line");
  }
  return records;
}

std::string required_string(const Record& record, const std::string& key, const std::string& hint) {
  auto it = record.value.find(key);
  if (it == record.value.end()) {
    throw std::invalid_argument(record.where() + ": the record has no \"" + key + "\" field (it has " +
                             list_keys(record.value) + ")" + (hint.empty() ? "" : "; " + hint));
  }
  if (!it->is_string()) {
    throw std::invalid_argument(record.where() + ": field \"" + key + "\" must be a string, got " +
                             describe_json_type(*it));
  }
  return it->get<std::string>();
}

std::string describe_json_type(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

std::map<std::string, std::string> scalar_fields(const nlohmann::json& object) {
  std::map<std::string, std::string> fields;
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (it->is_string()) {
      fields[it.key()] = it->get<std::string>();
    } else if (it->is_number() || it->is_boolean()) {
      fields[it.key()] = it->dump();
    }
  }
  return fields;
}

std::string list_keys(const nlohmann::json& object) {
  if (object.empty()) return "no fields";
  std::string keys;
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (!keys.empty()) keys += ", ";
    keys += "\"" + it.key() + "\"";
  }
  return keys;
}

}  // namespace loft::jsonl
