// Fuzzes the JSONL reader of the dataset plugins: any bytes as a file give records or the documented errors
// (std::invalid_argument naming the file and line for bad input, std::runtime_error for unreadable files); any other
// exception or a crash is a bug.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fuzz_support.h"
#include "jsonl_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loft::fuzz::write_scratch_file("input.jsonl", data, size);
  try {
    loft::jsonl::for_each_record(path, [](const loft::jsonl::Record& record) {
      (void)record.where();
      (void)loft::jsonl::scalar_fields(record.value);
      (void)loft::jsonl::list_keys(record.value);
      for (const char* key : {"problem", "solution", "answer", "text"}) {
        try {
          (void)loft::jsonl::required_string(record, key, "add the field");
        } catch (const std::invalid_argument&) {
        }
      }
      return true;
    });
  } catch (const std::invalid_argument&) {
  } catch (const std::runtime_error&) {
  }
  return 0;
}
