// DeepSeek-R1-Distill-Qwen's chat template (tokenizer_config.json `chat_template`) rendered by hand: the Jinja's
// control flow transcribed line for line, so a message list renders to the same text as transformers'
// apply_chat_template (tests/tokenizer/make_goldens.py renders the real Jinja string for comparison).
#include <string>

#include "loft/framework/tokenizer.h"
#include "tokenizer_impl.h"

namespace loft {
namespace {

constexpr std::string_view kUser = "<｜User｜>";
constexpr std::string_view kAssistant = "<｜Assistant｜>";
constexpr std::string_view kEndOfSentence = "<｜end▁of▁sentence｜>";
constexpr std::string_view kThinkEnd = "</think>";
constexpr std::string_view kToolOutputsBegin = "<｜tool▁outputs▁begin｜>";
constexpr std::string_view kToolOutputsEnd = "<｜tool▁outputs▁end｜>";
constexpr std::string_view kToolOutputBegin = "<｜tool▁output▁begin｜>";
constexpr std::string_view kToolOutputEnd = "<｜tool▁output▁end｜>";
constexpr std::string_view kGenerationPrompt = "<｜Assistant｜><think>\n";

}  // namespace

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  // {% set ns.system_prompt = message['content'] %} for each system message: the last one wins.
  std::string_view system_prompt;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") system_prompt = m.content;
  }
  std::string out = impl_->bos_token;
  out += system_prompt;
  bool is_tool = false, is_output_first = true;
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      is_tool = false;
      out += kUser;
      out += m.content;
    } else if (m.role == "assistant") {
      if (is_tool) {
        out += kToolOutputsEnd;
        out += m.content;
        out += kEndOfSentence;
        is_tool = false;
      } else {
        // {% set content = content.split('</think>')[-1] %}: keep only the answer after the reasoning.
        std::string_view content = m.content;
        const size_t think_end = content.rfind(kThinkEnd);
        if (think_end != std::string_view::npos) content = content.substr(think_end + kThinkEnd.size());
        out += kAssistant;
        out += content;
        out += kEndOfSentence;
      }
    } else if (m.role == "tool") {
      is_tool = true;
      if (is_output_first) {
        out += kToolOutputsBegin;
        is_output_first = false;
      } else {
        out += "\n";
      }
      out += kToolOutputBegin;
      out += m.content;
      out += kToolOutputEnd;
    }
  }
  if (is_tool) out += kToolOutputsEnd;
  if (add_generation_prompt && !is_tool) out += kGenerationPrompt;
  return out;
}

}  // namespace loft
