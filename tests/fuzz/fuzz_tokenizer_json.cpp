// Fuzzes tokenizer.json loading: any bytes load into a tokenizer that then encodes and decodes a mixed-script text,
// or fail with a Status naming the file; never a crash or an escaping exception.
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_support.h"
#include "loft/framework/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string folder = loft::fuzz::scratch_folder() + "/tok";
  ::mkdir(folder.c_str(), 0700);
  const std::string path = loft::fuzz::write_scratch_file("tok/tokenizer.json", data, size);
  auto tokenizer = loft::Tokenizer::from_file(path);
  if (!tokenizer.ok()) return 0;
  const auto ids = tokenizer.value().encode("Solve 3x + 5 = 20.\n\\boxed{5} caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD  \t<|im_end|>");
  (void)tokenizer.value().decode(ids);
  (void)tokenizer.value().decode(ids, /*skip_special_tokens=*/true);
  for (int32_t id : ids) (void)tokenizer.value().id_to_token(id);
  return 0;
}
