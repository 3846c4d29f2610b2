// Shared by the dataset plugin tests: JSONL fixtures written to a temporary folder, and datasets created through
// the plugin registry with options resolved as the host resolves them (manifest defaults, then the test's values).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "loft/dataset.h"
#include "loft/framework/files.h"
#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"

namespace loft::dataset_test {

class DatasetPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.discover({LOFT_PLUGIN_DIR});
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("loft_dataset_test_" + std::to_string(::getpid())) / (std::string(info->test_suite_name()) + "." +
                                                                   info->name());
    std::filesystem::create_directories(dir_);
  }
  // remove_tree, not std::filesystem::remove_all: see loft/framework/files.h.
  void TearDown() override { EXPECT_TRUE(remove_tree(dir_).ok()); }

  // Writes `text` byte for byte to <temp>/<name> and returns its path.
  std::string write(const std::string& name, const std::string& text) {
    const auto path = dir_ / name;
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
  }

  // Manifest defaults of dataset/<name>, overridden by `values` (a recipe's [dataset] entries).
  Options options(const std::string& name, const std::map<std::string, OptionValue>& values = {}) {
    const PluginManifest* m = registry_.find("dataset", name);
    EXPECT_NE(m, nullptr) << "dataset/" << name << " not found in " << LOFT_PLUGIN_DIR;
    std::map<std::string, OptionValue> resolved;
    if (m) {
      for (const auto& spec : m->options) {
        if (spec.default_value) resolved[spec.name] = *spec.default_value;
      }
    }
    for (const auto& [k, v] : values) resolved[k] = v;
    return Options("dataset", resolved);
  }

  StatusOr<std::unique_ptr<Dataset>> create(const std::string& name,
                                            const std::map<std::string, OptionValue>& values) {
    return registry_.create_dataset(name, ctx_, options(name, values));
  }

  // The dataset, or a test failure with the plugin's message.
  std::unique_ptr<Dataset> load(const std::string& name, const std::map<std::string, OptionValue>& values) {
    auto d = create(name, values);
    EXPECT_TRUE(d.ok()) << d.status().message();
    return d.ok() ? std::move(d).value() : nullptr;
  }

  // The plugin's error message; a test failure when creation succeeds.
  std::string error(const std::string& name, const std::map<std::string, OptionValue>& values) {
    auto d = create(name, values);
    EXPECT_FALSE(d.ok()) << "dataset/" << name << " accepted bad input";
    return d.ok() ? std::string() : d.status().message();
  }

  PluginRegistry registry_;
  RunContext ctx_{c10::Device(c10::kCPU), c10::kFloat, 1234};
  std::filesystem::path dir_;
};

}  // namespace loft::dataset_test
