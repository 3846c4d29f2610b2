// The loader's pure decisions: descriptor growth rule, fingerprint comparison, CUDA architecture compatibility.
#include "plugin/plugin_checks.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "loft/fingerprint.h"

namespace loft {

StatusOr<loft_plugin_descriptor> read_descriptor(const loft_plugin_descriptor* d) {
  if (!d) return Status::FailedPrecondition("loft_plugin_describe() returned no descriptor (null)");
  // abi_version and struct_size open every layout of every version, so they can be read before anything else.
  if (d->abi_version != LOFT_SDK_ABI_VERSION) {
    return Status::FailedPrecondition(fmt::format("its descriptor declares SDK ABI version {}, this loft supports "
                                                  "version {}",
                                                  d->abi_version, LOFT_SDK_ABI_VERSION));
  }
  if (d->struct_size < LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE) {
    return Status::FailedPrecondition(fmt::format(
        "its descriptor is {} bytes, shorter than the {} bytes of the smallest descriptor of SDK ABI version {}",
        d->struct_size, LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE, LOFT_SDK_ABI_VERSION));
  }
  loft_plugin_descriptor copy;
  std::memset(&copy, 0, sizeof(copy));
  std::memcpy(&copy, d, std::min<size_t>(d->struct_size, sizeof(copy)));
  return copy;
}

std::string fingerprint_mismatch(const loft_build_fingerprint& host, const loft_build_fingerprint& plugin,
                                 const std::string& kind) {
  auto text = [](const char* s) { return std::string(s ? s : "(null)"); };
  auto major = [](const std::string& compiler) { return compiler.substr(0, compiler.find('.')); };
  // A dataset plugin built without torch exchanges only std types with the host: torch and CUDA do not matter.
  const bool torch_free = kind == "dataset" && text(plugin.torch_version) == LOFT_TORCH_VERSION_NONE;
  std::vector<std::string> diffs;
  if (host.sdk_abi != plugin.sdk_abi) diffs.push_back(fmt::format("SDK ABI {} vs host {}", plugin.sdk_abi, host.sdk_abi));
  if (!torch_free && text(host.torch_version) != text(plugin.torch_version)) {
    std::string why = text(plugin.torch_version) == LOFT_TORCH_VERSION_NONE
                          ? " (built without torch headers, which only a dataset plugin may be)"
                          : "";
    diffs.push_back(fmt::format("torch {} vs host {}{}", text(plugin.torch_version), text(host.torch_version), why));
  }
  if (!(torch_free && plugin.cuda_runtime == 0) && host.cuda_runtime / 1000 != plugin.cuda_runtime / 1000)
    diffs.push_back(fmt::format("CUDA runtime {} vs host {}", plugin.cuda_runtime, host.cuda_runtime));
  if (host.cxx11_abi != plugin.cxx11_abi)
    diffs.push_back(fmt::format("_GLIBCXX_USE_CXX11_ABI {} vs host {}", plugin.cxx11_abi, host.cxx11_abi));
  if (major(text(host.compiler)) != major(text(plugin.compiler)))
    diffs.push_back(fmt::format("compiler {} vs host {}", text(plugin.compiler), text(host.compiler)));
  if (host.fmt_major != plugin.fmt_major)
    diffs.push_back(fmt::format("fmt major {} vs host {}", plugin.fmt_major, host.fmt_major));
  if (host.glibcxx_assertions != plugin.glibcxx_assertions)
    diffs.push_back(fmt::format("_GLIBCXX_ASSERTIONS {} vs host {}", plugin.glibcxx_assertions ? "on" : "off",
                                host.glibcxx_assertions ? "on" : "off"));
  if (host.glibcxx_debug != plugin.glibcxx_debug)
    diffs.push_back(fmt::format("_GLIBCXX_DEBUG {} vs host {}", plugin.glibcxx_debug ? "on" : "off",
                                host.glibcxx_debug ? "on" : "off"));
  std::string out;
  for (const auto& d : diffs) out += (out.empty() ? "" : "; ") + d;
  return out;
}

namespace {

StatusOr<CudaCode> parse_one(const std::string& entry) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(fmt::format("CUDA architecture '{}' {} (write sm_XY or compute_XY, e.g. sm_90, "
                                               "optionally with an a or f suffix)",
                                               entry, why));
  };
  CudaCode code;
  code.text = entry;
  std::string rest;
  if (entry.rfind("sm_", 0) == 0) {
    rest = entry.substr(3);
  } else if (entry.rfind("compute_", 0) == 0) {
    code.ptx = true;
    rest = entry.substr(8);
  } else {
    return bad("starts with neither sm_ nor compute_");
  }
  if (!rest.empty() && (rest.back() == 'a' || rest.back() == 'f')) {
    (rest.back() == 'a' ? code.arch_specific : code.family) = true;
    rest.pop_back();
  }
  if (rest.size() < 2 || rest.size() > 3 || !std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad("has no two- or three-digit compute capability");
  code.major = std::stoi(rest.substr(0, rest.size() - 1));
  code.minor = rest.back() - '0';
  if (code.major == 0) return bad("has major version 0");
  return code;
}

}  // namespace

StatusOr<std::vector<CudaCode>> parse_cuda_architectures(const std::string& list) {
  std::vector<CudaCode> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string entry = list.substr(start, end - start);
    entry.erase(0, entry.find_first_not_of(' '));
    entry.erase(entry.find_last_not_of(' ') + 1);
    if (entry.empty()) {
      return Status::InvalidArgument(fmt::format("CUDA architecture list '{}' has an empty entry (expected a "
                                                 "comma-separated list such as \"sm_75,sm_90\")",
                                                 list));
    }
    auto code = parse_one(entry);
    if (!code.ok()) return code.status();
    out.push_back(std::move(code).value());
    start = end + 1;
  }
  return out;
}

bool cuda_code_runs_on(const CudaCode& code, int major, int minor) {
  if (code.arch_specific) return code.major == major && code.minor == minor;
  if (code.ptx && !code.family) return major > code.major || (major == code.major && minor >= code.minor);
  return major == code.major && minor >= code.minor;  // SASS, and family code (f): the same major only
}

std::string cuda_architecture_refusal(const std::vector<CudaCode>& codes, int major, int minor) {
  for (const auto& c : codes) {
    if (cuda_code_runs_on(c, major, minor)) return "";
  }
  std::vector<std::string> names;
  for (const auto& c : codes) names.push_back(c.text);
  return fmt::format("built for {}; this GPU is sm_{}{}", fmt::join(names, ", "), major, minor);
}

}  // namespace loft
