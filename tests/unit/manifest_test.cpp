// Manifest parsing: identity, schema, and errors that name the file and line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "loft/framework/manifest.h"

namespace fs = std::filesystem;

namespace loft {
namespace {

fs::path write(const std::string& name, const std::string& text) {
  fs::path dir = std::filesystem::temp_directory_path() / ("loft_manifest_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path file = dir / name;
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
  return file;
}

TEST(Manifest, ReadsIdentityAndSchema) {
  auto file = write("ok.toml", R"(name = "lora"
kind = "peft"
version = "1.2.3"
sdk_abi = 2
library = "libx.so"
summary = "low-rank adapters"
[options.r]
type = "int"
default = 8
min = 1
[options.init]
type = "string"
default = "kaiming"
choices = ["kaiming", "zeros"]
)");
  auto m = read_manifest(file);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m.value().qualified_name(), "peft/lora");
  EXPECT_EQ(m.value().library_path, fs::absolute(file.parent_path() / "libx.so"));
  ASSERT_EQ(m.value().options.size(), 2u);
  const OptionSpec* r = find_option(m.value().options, "r");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->type, OptionType::kInt);
  EXPECT_EQ(std::get<int64_t>(*r->default_value), 8);
  EXPECT_EQ(*r->min, 1.0);
  EXPECT_EQ(find_option(m.value().options, "init")->choices.size(), 2u);
}

TEST(Manifest, OptionsKeepTheManifestOrder) {
  // Not alphabetical, and one option given as an inline table between two [options.x] sections.
  auto m = read_manifest(write("order.toml", R"(name = "x"
kind = "peft"
version = "1"
sdk_abi = 2
library = "libx.so"
[options.zeta]
type = "int"
default = 1
[options]
beta = { type = "string", default = "b" }
[options.alpha]
type = "bool"
default = false
[options.mid]
type = "float"
default = 0.5
)"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::vector<std::string> names;
  for (const auto& o : m.value().options) names.push_back(o.name);
  EXPECT_EQ(names, (std::vector<std::string>{"zeta", "beta", "alpha", "mid"}));
}

TEST(Manifest, IntOptionsTakeIntegerChoices) {
  const std::string head = "name = \"x\"\nkind = \"quantizer\"\nversion = \"1\"\nsdk_abi = 2\nlibrary = \"libx.so\"\n";
  auto m = read_manifest(write("intchoices.toml", head + "[options.blocksize]\ntype = \"int\"\ndefault = 64\n"
                                                         "choices = [32, 64, 128]\n"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(find_option(m.value().options, "blocksize")->choices, (std::vector<std::string>{"32", "64", "128"}));
  auto bad = read_manifest(write("badintchoices.toml", head + "[options.blocksize]\ntype = \"int\"\n"
                                                              "choices = [\"64\"]\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("badintchoices.toml:8"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("choices of an int option must be a list of integers"), std::string::npos);
}

TEST(Manifest, BoolOptionsDeclareWhatTheyRequireOfOtherKeys) {
  const std::string head = R"(name = "zero3"
kind = "offload"
version = "0.1.0"
sdk_abi = 2
library = "libx.so"
)";
  auto m = read_manifest(write("requires.toml", head + R"([options.optimizer]
type = "bool"
default = false
requires = { "optimizer.type" = "adamw_cpu", "train.batch_size" = 1 }
)"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m.value().requirements.size(), 2u);
  EXPECT_EQ(m.value().requirements[0].option, "optimizer");
  EXPECT_EQ(m.value().requirements[0].key, "optimizer.type");
  EXPECT_EQ(m.value().requirements[0].value, "adamw_cpu");
  EXPECT_EQ(m.value().requirements[1].value, "1");
  for (const std::string bad : {"[options.n]\ntype = \"int\"\nrequires = { \"optimizer.type\" = \"x\" }\n",
                                "[options.b]\ntype = \"bool\"\nrequires = \"optimizer.type\"\n",
                                "[options.b]\ntype = \"bool\"\nrequires = { \"type\" = \"x\" }\n",
                                "[options.b]\ntype = \"bool\"\nrequires = { \"optimizer.type\" = [1] }\n"}) {
    SCOPED_TRACE(bad);
    auto r = read_manifest(write("badrequires.toml", head + bad));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("badrequires.toml:8"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("requires"), std::string::npos) << r.status().message();
  }
}

TEST(Manifest, ErrorsNameFileAndProblem) {
  auto missing = read_manifest(write("missing.toml", "name = \"x\"\nkind = \"peft\"\n"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.toml"), std::string::npos);
  EXPECT_NE(missing.status().message().find("version"), std::string::npos);

  auto bad_type = read_manifest(write("badtype.toml", R"(name = "x"
kind = "peft"
version = "1"
sdk_abi = 2
library = "l.so"
[options.r]
type = "integer"
)"));
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.status().message().find("badtype.toml:7"), std::string::npos) << bad_type.status().message();
  EXPECT_NE(bad_type.status().message().find("unknown option type 'integer'"), std::string::npos);

  auto bad_default = read_manifest(write("baddefault.toml", R"(name = "x"
kind = "peft"
version = "1"
sdk_abi = 2
library = "l.so"
[options.r]
type = "int"
default = "eight"
)"));
  ASSERT_FALSE(bad_default.ok());
  EXPECT_NE(bad_default.status().message().find("expected an int, got a string"), std::string::npos)
      << bad_default.status().message();

  auto syntax = read_manifest(write("syntax.toml", "name = \n"));
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.status().message().find("syntax.toml:1"), std::string::npos) << syntax.status().message();
}

// A manifest describes the plugin beside it: a `library` outside its folder is refused, however it gets there.
TEST(Manifest, LibraryOutsideTheManifestsFolderIsRefused) {
  const fs::path dir = write("escape/plugin/keep", "").parent_path();
  const fs::path outside = write("escape/elsewhere/libx.so", "");
  write("escape/plugin/libx.so", "");
  write("escape/plugin/sub/liby.so", "");
  ASSERT_EQ(::symlink(outside.c_str(), (dir / "link.so").c_str()), 0);
  ASSERT_EQ(::symlink(outside.parent_path().c_str(), (dir / "linkdir").c_str()), 0);
  ASSERT_EQ(::symlink((dir / "libx.so").c_str(), (dir / "inside_link.so").c_str()), 0);
  auto manifest = [&](const std::string& library) {
    return read_manifest(write("escape/plugin/plugin.toml", "name = \"x\"\nkind = \"quantizer\"\nversion = \"1\"\n"
                                                            "sdk_abi = 2\nlibrary = \"" + library + "\"\n"));
  };
  for (const std::string library : {"libx.so", "sub/liby.so", "./libx.so", "inside_link.so", "not_built_yet.so"}) {
    SCOPED_TRACE(library);
    auto m = manifest(library);
    EXPECT_TRUE(m.ok()) << m.status().message();
  }
  struct Case {
    std::string library, says;
  };
  for (const Case& c : {Case{"../elsewhere/libx.so", "leaves the manifest's folder through `..`"},
                        Case{"sub/../../elsewhere/libx.so", "leaves the manifest's folder through `..`"},
                        Case{"..", "leaves the manifest's folder through `..`"},
                        Case{outside.string(), "is an absolute path"},
                        Case{"/usr/lib/libc.so.6", "is an absolute path"},
                        Case{"link.so", "resolves through a symlink to " + outside.string()},
                        Case{"linkdir/libx.so", "resolves through a symlink to " + outside.string()},
                        Case{"", "is empty"}}) {
    SCOPED_TRACE(c.library);
    auto m = manifest(c.library);
    ASSERT_FALSE(m.ok());
    const std::string& message = m.status().message();
    EXPECT_NE(message.find((dir / "plugin.toml").string() + ":5: library = \"" + c.library + "\""), std::string::npos)
        << message;
    EXPECT_NE(message.find(c.says), std::string::npos) << message;
    EXPECT_NE(message.find("only name a library in its own folder"), std::string::npos) << message;
  }
}

TEST(Manifest, RenamedOptionsAreReadAndChecked) {
  const std::string head = "name = \"x\"\nkind = \"dataset\"\nversion = \"1\"\nsdk_abi = 2\nlibrary = \"l.so\"\n";
  auto m = read_manifest(write("renamed.toml", head + "[renamed]\nsize = \"limit\"\n"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m.value().renamed_options.at("size"), "limit");
  auto bad = read_manifest(write("badrenamed.toml", head + "[renamed]\nsize = 3\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("badrenamed.toml:7: renamed.size must be a string"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace loft
