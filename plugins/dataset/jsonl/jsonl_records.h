// Reading JSONL files for the dataset plugins (dataset/jsonl, dataset/math): one JSON object per line, with errors
// that name the file and line. Compiled into each plugin that uses it; nothing here crosses the plugin boundary.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "loft/options.h"

namespace loft::jsonl {

// One record and where it came from, for error messages ("data/train.jsonl:17").
struct Record {
  const nlohmann::json& value;  // always an object
  const std::string& file;
  int64_t line;  // 1-based
  std::string where() const { return file + ":" + std::to_string(line); }
};

// The `path` option, checked: present and non-empty. `what` describes the file for the message
// ("a MATH JSONL file"). Throws std::invalid_argument whose message contains "path".
std::string required_path(const Options& options, const std::string& what);

// Calls `visit` on each non-blank line of `path`, parsed as a JSON object, in file order, until `visit` returns
// false. A UTF-8 byte-order mark and CRLF line ends are accepted; strings pass through as UTF-8. Returns the number
// of records visited. Throws std::invalid_argument naming the file (and line) when the file is missing, holds no
// record at all, or a line is not one JSON object (the user's input: exit 2), std::runtime_error when it cannot be
// opened or read.
int64_t for_each_record(const std::string& path, const std::function<bool(const Record&)>& visit);

// The string at `key` of `record`. Throws std::invalid_argument "<file>:<line>: ..." when it is missing (`hint` says
// how to fix) or not a string.
std::string required_string(const Record& record, const std::string& key, const std::string& hint);

// "a number", "an array", "null", ...: the JSON type of `value` as an error message names it.
std::string describe_json_type(const nlohmann::json& value);

// The record's scalar fields as text: strings as they are, numbers and booleans as JSON spells them; arrays,
// objects and null are left out. For Sample::fields.
std::map<std::string, std::string> scalar_fields(const nlohmann::json& object);

// The record's keys, comma-separated and quoted, for "the record has: ..." hints.
std::string list_keys(const nlohmann::json& object);

}  // namespace loft::jsonl
