# The tokenizer (HF tokenizer.json byte-level BPE + DeepSeek-R1-Distill chat template), compiled into loft_framework.
# Included by framework/CMakeLists.txt after the loft_framework target exists. No torch headers: it builds fast.
target_sources(loft_framework PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/src/tokenizer/byte_level.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tokenizer/bpe.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tokenizer/chat_template.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tokenizer/regex_splitter.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tokenizer/text_utf8.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tokenizer/tokenizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/tokenizer/tokenizer_load.cpp
)
target_link_libraries(loft_framework PRIVATE PCRE2::PCRE2 utf8proc::utf8proc nlohmann_json::nlohmann_json)
