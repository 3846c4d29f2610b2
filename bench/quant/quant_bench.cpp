// Google Benchmark of every installed quantizer on the 1.5B model's linear shapes: forward, forward+backward w.r.t.
// x, and dequantize, each case validated against the fp32 reference before it is timed; ratios against bf16.
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "quant_cases.h"

namespace loft::bench {
namespace {

constexpr const char* kUsage = R"(loft_bench_quant: quantizer forward / forward+backward / dequantize on the 1.5B linear shapes.
Own flags (Google Benchmark's --benchmark_* flags pass through):
  --device=auto|cuda|cpu   where to run (auto: cuda when visible)          [auto]
  --tokens=M               rows of x                                         [4096]
  --small-shapes           small stand-ins for the four shapes (CPU checks)
  --validate-only          validate every case, time nothing; exit 1 if any case fails
  --quantizers=a,b         variant labels or plugin names (bf16,int8-dequant,int8-int8,nf4,fp4,...)
  --plugin-path=DIR        extra plugin folder (before $LOFT_PLUGIN_PATH and the built-in one)
)";

struct Args {
  std::string device = "auto";
  int64_t tokens = 4096;
  bool small = false;
  bool validate_only = false;
  std::vector<std::string> only;
  std::vector<std::filesystem::path> plugin_path;
};

// Takes our flags out of argv (Google Benchmark gets the rest). Returns false on a bad flag.
bool parse_args(int* argc, char** argv, Args* args) {
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      const size_t n = std::strlen(flag);
      return a.compare(0, n, flag) == 0 && a.size() > n && a[n] == '=' ? argv[i] + n + 1 : nullptr;
    };
    try {
      if (const char* v = value("--device")) {
        args->device = v;
      } else if (const char* v = value("--tokens")) {
        args->tokens = std::stoll(v);
      } else if (a == "--small-shapes") {
        args->small = true;
      } else if (a == "--validate-only") {
        args->validate_only = true;
      } else if (const char* v = value("--quantizers")) {
        args->only = split_list(v);
      } else if (const char* v = value("--plugin-path")) {
        args->plugin_path.emplace_back(v);
      } else if (a == "--help" || a == "-h") {
        std::fputs(kUsage, stdout);
        std::exit(0);
      } else if (a.rfind("--benchmark_", 0) == 0) {
        argv[kept++] = argv[i];
      } else {
        std::fprintf(stderr, "loft_bench_quant: unknown argument '%s'\n%s", a.c_str(), kUsage);
        return false;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "loft_bench_quant: bad value in '%s'\n", a.c_str());
      return false;
    }
  }
  *argc = kept;
  return args->device == "auto" || args->device == "cuda" || args->device == "cpu";
}

// One validated (variant, shape) pair, ready to time.
struct Case {
  std::string variant;
  LinearShape shape;
  std::shared_ptr<QuantizedLinear> stored;
  at::Tensor x;   // [M, in] bf16
  at::Tensor dy;  // [M, out] bf16
  int64_t storage_bytes = 0;
};

std::string shape_key(const LinearShape& s) { return fmt::format("{}x{}", s.out_features, s.in_features); }

// Times `op` per iteration: on the GPU, CUDA events around kCallsPerIteration back-to-back calls (so the host's
// dispatch of one call overlaps the GPU's work on the previous one, as in training), the host waiting for the end
// event only; wall clock on the CPU. An exception skips the benchmark with its message.
constexpr int kCallsPerIteration = 10;

template <typename Op>
void time_op(benchmark::State& state, const std::string& name, const c10::Device& device, const Op& op,
             std::set<std::string>* failed) {
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);  // timing enabled
  try {
    op();  // warm-up: cuBLAS handles, allocator blocks, lazy plugin state
    if (device.is_cuda()) {
      start.record();
      stop.record();
      stop.synchronize();
    }
  } catch (const std::exception& e) {
    failed->insert(name);
    state.SkipWithError(error_text(e).c_str());
    return;
  }
  for (auto _ : state) {
    try {
      if (device.is_cuda()) {
        start.record();
        for (int i = 0; i < kCallsPerIteration; ++i) op();
        stop.record();
        stop.synchronize();
        state.SetIterationTime(static_cast<double>(start.elapsed_time(stop)) / 1e3 / kCallsPerIteration);
      } else {
        const auto t0 = std::chrono::steady_clock::now();
        op();
        state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    } catch (const std::exception& e) {
      failed->insert(name);
      state.SkipWithError(error_text(e).c_str());
      break;
    }
  }
}

// Console output as usual, and each benchmark's mean time (µs) kept for the ratio table.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  RecordingReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.iterations <= 0) continue;
      auto& [sum, n] = times_[r.run_name.function_name];  // the registered name, without "/manual_time"
      sum += r.GetAdjustedRealTime();
      n += 1;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  // Mean over repetitions, or a negative value when the benchmark did not run.
  double time_us(const std::string& name) const {
    auto it = times_.find(name);
    return it == times_.end() || it->second.second == 0 ? -1 : it->second.first / it->second.second;
  }

 private:
  std::map<std::string, std::pair<double, int>> times_;
};

std::string cell(double value, const char* spec) {
  return value < 0 ? std::string("-") : fmt::format(fmt::runtime(spec), value);
}
std::string ratio(double a, double b) { return a < 0 || b <= 0 ? std::string("-") : fmt::format("{:.2f}x", a / b); }

int run(int argc, char** argv) {
  Args args;
  if (!parse_args(&argc, argv, &args)) return 2;
  const bool cuda = args.device == "cuda" || (args.device == "auto" && torch::cuda::is_available());
  if (cuda && !torch::cuda::is_available()) {
    std::fprintf(stderr, "loft_bench_quant: --device=cuda but no CUDA device is visible\n");
    return 2;
  }
  const c10::Device device = cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  const std::string device_name = cuda ? fmt::format("cuda:0 ({})", at::cuda::getDeviceProperties(0)->name) : "cpu";

  PluginRegistry registry;
  registry.discover(plugin_search_path(args.plugin_path));
  RunContext ctx(device, c10::kBFloat16, 1234, "bench");
  std::vector<std::string> errors;
  auto quantizers = make_quantizers(registry, ctx, args.only, &errors);
  if (quantizers.empty()) {
    std::fprintf(stderr, "loft_bench_quant: no quantizer to run (plugin path problems: %zu)\n",
                 registry.problems().size());
    for (const auto& p : registry.problems()) std::fprintf(stderr, "  %s\n", p.c_str());
    return 1;
  }

  // Validate every case first; only validated ones are timed.
  std::printf("validation: M = %lld tokens, bf16, %s; W ~ N(0, 0.02²), x, dy ~ N(0, 1)\n",
              static_cast<long long>(args.tokens), device_name.c_str());
  std::printf("%-14s %-18s %-11s %11s %10s %10s %10s %10s  %s\n", "variant", "linear", "out x in", "storage",
              "deq max", "deq rms", "y err", "dx err", "result");
  std::vector<Case> cases;
  torch::manual_seed(1234);
  const auto bf16 = at::TensorOptions().dtype(at::kBFloat16).device(device);
  for (const auto& shape : linear_shapes(args.small)) {
    const at::Tensor x = at::randn({args.tokens, shape.in_features}, bf16);
    const at::Tensor dy = at::randn({args.tokens, shape.out_features}, bf16);
    const at::Tensor w = (at::randn({shape.out_features, shape.in_features}, bf16.dtype(at::kFloat)) * 0.02)
                             .to(at::kBFloat16);
    for (const auto& q : quantizers) {
      Case c{q.variant.label, shape, nullptr, x, dy, 0};
      Validation v;
      try {
        c.stored = q.quantizer->quantize(w, "model.layers.0.bench." + shape.name);
        v = validate(q, *c.stored, w, x);
      } catch (const std::exception& e) {
        v.ok = false;
        v.message = "quantize threw: " + error_text(e);
      }
      std::printf("%-14s %-18s %-11s %11s %10.3g %10.3g %10.3g %10.3g  %s\n", c.variant.c_str(), shape.name.c_str(),
                  shape_key(shape).c_str(), format_bytes(static_cast<double>(v.storage_bytes)).c_str(), v.max_error,
                  v.rms_error, v.output_error, v.grad_error, v.ok ? "ok" : ("FAILED: " + v.message).c_str());
      if (v.ok && v.state_bytes != v.storage_bytes) {
        std::printf("note: %s %s: storage_bytes() %lld but state() tensors hold %lld bytes\n", c.variant.c_str(),
                    shape_key(shape).c_str(), static_cast<long long>(v.storage_bytes),
                    static_cast<long long>(v.state_bytes));
      }
      if (!v.ok) {
        errors.push_back(fmt::format("{} {}: {}", c.variant, shape_key(shape), v.message));
        continue;
      }
      c.storage_bytes = v.storage_bytes;
      cases.push_back(std::move(c));
    }
  }
  std::fflush(stdout);
  if (args.validate_only) {
    std::printf("%zu cases validated, %zu failed\n", cases.size(), errors.size());
    return errors.empty() ? 0 : 1;
  }

  std::set<std::string> failed;
  const char* ops[] = {"forward", "fwd+bwd", "dequantize"};
  for (const auto& c : cases) {
    for (const char* op : ops) {
      const std::string name = fmt::format("{}/{}/{}", c.variant, shape_key(c.shape), op);
      const std::string kind = op;
      benchmark::RegisterBenchmark(name.c_str(), [c, kind, name, device, &failed](benchmark::State& state) {
        if (kind == "forward") {
          time_op(state, name, device, [&] {
            torch::NoGradGuard no_grad;
            at::Tensor y = c.stored->forward(c.x);
            benchmark::DoNotOptimize(y);
          }, &failed);
        } else if (kind == "fwd+bwd") {
          time_op(state, name, device, [&] {
            const at::Tensor x = c.x.detach().requires_grad_(true);
            const at::Tensor y = c.stored->forward(x);
            auto dx = torch::autograd::grad({y}, {x}, {c.dy});
            benchmark::DoNotOptimize(dx);
          }, &failed);
        } else {
          time_op(state, name, device, [&] {
            torch::NoGradGuard no_grad;
            at::Tensor w = c.stored->dequantize(at::kBFloat16);
            benchmark::DoNotOptimize(w);
          }, &failed);
        }
        state.counters["storage_MB"] = static_cast<double>(c.storage_bytes) / 1e6;
      })->UseManualTime()->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  auto t = [&](const std::string& variant, const LinearShape& s, const char* op) {
    const std::string name = fmt::format("{}/{}/{}", variant, shape_key(s), op);
    return failed.count(name) ? -1.0 : reporter.time_us(name);
  };
  std::printf("\nquant: M = %lld tokens, bf16, %s; µs per call (%s, mean); ratios against bf16 (quantizer/none)\n",
              static_cast<long long>(args.tokens), device_name.c_str(), cuda ? "CUDA events" : "wall clock");
  std::printf("%-14s %-18s %-11s %11s %7s | %10s %7s | %10s %7s | %10s %9s\n", "variant", "linear", "out x in",
              "storage", "x bf16", "forward", "x bf16", "fwd+bwd", "x bf16", "dequant", "/bf16 fwd");
  std::map<std::string, std::array<double, 3>> layer;  // variant -> one decoder layer's forward, fwd+bwd, storage
  std::map<std::string, bool> layer_complete;
  for (const auto& c : cases) {
    const double f = t(c.variant, c.shape, "forward"), fb = t(c.variant, c.shape, "fwd+bwd"),
                 d = t(c.variant, c.shape, "dequantize");
    const double bf = t("bf16", c.shape, "forward"), bfb = t("bf16", c.shape, "fwd+bwd");
    double bs = -1;
    for (const auto& o : cases) {
      if (o.variant == "bf16" && o.shape.name == c.shape.name) bs = static_cast<double>(o.storage_bytes);
    }
    std::printf("%-14s %-18s %-11s %11s %7s | %10s %7s | %10s %7s | %10s %9s\n", c.variant.c_str(),
                c.shape.name.c_str(), shape_key(c.shape).c_str(),
                format_bytes(static_cast<double>(c.storage_bytes)).c_str(),
                ratio(static_cast<double>(c.storage_bytes), bs).c_str(), cell(f, "{:.1f}").c_str(), ratio(f, bf).c_str(),
                cell(fb, "{:.1f}").c_str(), ratio(fb, bfb).c_str(), cell(d, "{:.1f}").c_str(), ratio(d, bf).c_str());
    auto& l = layer[c.variant];
    if (!layer_complete.count(c.variant)) layer_complete[c.variant] = true;
    if (f < 0 || fb < 0) layer_complete[c.variant] = false;
    l[0] += f * static_cast<double>(c.shape.per_layer);
    l[1] += fb * static_cast<double>(c.shape.per_layer);
    l[2] += static_cast<double>(c.storage_bytes * c.shape.per_layer);
  }
  const size_t n_shapes = linear_shapes(args.small).size();
  std::printf("\none decoder layer's 7 linears (q, k, v, o, gate, up, down):\n");
  std::printf("%-14s %11s %7s | %10s %7s | %10s %7s\n", "variant", "storage", "x bf16", "forward", "x bf16",
              "fwd+bwd", "x bf16");
  const auto base = layer.find("bf16");
  for (const auto& [variant, l] : layer) {
    size_t shapes = 0;
    for (const auto& c : cases) shapes += c.variant == variant;
    if (shapes != n_shapes || !layer_complete[variant]) {
      std::printf("%-14s (incomplete: a shape failed validation or timing)\n", variant.c_str());
      continue;
    }
    const bool b = base != layer.end() && layer_complete["bf16"];
    std::printf("%-14s %11s %7s | %10.1f %7s | %10.1f %7s\n", variant.c_str(), format_bytes(l[2]).c_str(),
                b ? ratio(l[2], base->second[2]).c_str() : "-", l[0], b ? ratio(l[0], base->second[0]).c_str() : "-",
                l[1], b ? ratio(l[1], base->second[1]).c_str() : "-");
  }
  if (!errors.empty() || !failed.empty()) {
    std::printf("\n%zu case(s) failed validation or creation, %zu benchmark(s) failed while timing:\n", errors.size(),
                failed.size());
    for (const auto& e : errors) std::printf("  %s\n", e.c_str());
    for (const auto& f : failed) std::printf("  %s\n", f.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace loft::bench

int main(int argc, char** argv) { return loft::bench::run(argc, argv); }
