// loft::fs: the POSIX layer that replaces std::filesystem's operations in a libtorch process.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "loft/framework/files.h"

namespace loft {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/loft_files_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override { EXPECT_TRUE(remove_tree(root_).ok()); }
  fs::path root_;
};

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

TEST_F(FilesTest, CreateDirectoriesMakesEveryParentAndAcceptsAnExistingFolder) {
  const auto deep = root_ / "a" / "b" / "c";
  ASSERT_TRUE(fs::create_directories(deep).ok());
  EXPECT_TRUE(fs::is_directory(deep));
  EXPECT_TRUE(fs::create_directories(deep).ok());
  write(root_ / "file", "x");
  auto st = fs::create_directories(root_ / "file" / "below");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("cannot create folder"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("file/below"), std::string::npos) << st.message();
}

TEST_F(FilesTest, KindsAndSizes) {
  write(root_ / "f.txt", "12345");
  EXPECT_TRUE(fs::exists(root_ / "f.txt"));
  EXPECT_TRUE(fs::is_regular_file(root_ / "f.txt"));
  EXPECT_FALSE(fs::is_directory(root_ / "f.txt"));
  EXPECT_TRUE(fs::is_directory(root_));
  EXPECT_FALSE(fs::is_regular_file(root_));
  EXPECT_FALSE(fs::exists(root_ / "missing"));
  EXPECT_EQ(fs::file_size(root_ / "f.txt"), std::optional<uint64_t>(5));
  EXPECT_EQ(fs::file_size(root_), std::nullopt);
  EXPECT_EQ(fs::file_size(root_ / "missing"), std::nullopt);
}

TEST_F(FilesTest, RenameReplacesAtomicallyAndReportsFailure) {
  write(root_ / "new", "new");
  write(root_ / "old", "old");
  ASSERT_TRUE(fs::rename(root_ / "new", root_ / "old").ok());
  std::ifstream in(root_ / "old");
  std::string text;
  in >> text;
  EXPECT_EQ(text, "new");
  EXPECT_FALSE(fs::exists(root_ / "new"));
  auto st = fs::rename(root_ / "missing", root_ / "x");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("missing"), std::string::npos) << st.message();
}

TEST_F(FilesTest, ListAndFindAreSortedAndDoNotFollowFolderLinks) {
  ASSERT_TRUE(fs::create_directories(root_ / "p" / "z").ok());
  ASSERT_TRUE(fs::create_directories(root_ / "p" / "a" / "deep").ok());
  write(root_ / "p" / "z" / "plugin.toml", "");
  write(root_ / "p" / "a" / "deep" / "plugin.toml", "");
  write(root_ / "p" / "a" / "other.toml", "");
  // A link back to the top would loop forever if followed.
  ASSERT_EQ(::symlink(root_.c_str(), (root_ / "p" / "a" / "loop").c_str()), 0);
  const auto found = fs::find_files_named(root_ / "p", "plugin.toml");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], root_ / "p" / "a" / "deep" / "plugin.toml");
  EXPECT_EQ(found[1], root_ / "p" / "z" / "plugin.toml");
  const auto listed = fs::list_directory(root_ / "p" / "a");
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[0].filename(), "deep");
  EXPECT_EQ(listed[1].filename(), "loop");
  EXPECT_EQ(listed[2].filename(), "other.toml");
  EXPECT_TRUE(fs::list_directory(root_ / "missing").empty());
  EXPECT_TRUE(fs::find_files_named(root_ / "missing", "plugin.toml").empty());
}

TEST_F(FilesTest, AbsoluteAndWeaklyCanonical) {
  EXPECT_EQ(fs::absolute("/x/y"), fs::path("/x/y"));
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  EXPECT_EQ(fs::absolute("rel/file"), fs::path(cwd) / "rel" / "file");
  ASSERT_TRUE(fs::create_directories(root_ / "real" / "sub").ok());
  ASSERT_EQ(::symlink((root_ / "real").c_str(), (root_ / "link").c_str()), 0);
  const fs::path real = fs::weakly_canonical(root_ / "real");
  // Through a link, with dot-dot, and with a tail that does not exist yet: one spelling.
  EXPECT_EQ(fs::weakly_canonical(root_ / "link"), real);
  EXPECT_EQ(fs::weakly_canonical(root_ / "link" / "sub" / ".."), real);
  EXPECT_EQ(fs::weakly_canonical(root_ / "link" / "not" / "yet"), real / "not" / "yet");
}

TEST_F(FilesTest, RemoveTreeDeletesEverythingButNotWhatLinksPointTo) {
  ASSERT_TRUE(fs::create_directories(root_ / "keep").ok());
  write(root_ / "keep" / "precious", "x");
  ASSERT_TRUE(fs::create_directories(root_ / "gone" / "d").ok());
  write(root_ / "gone" / "d" / "f", "x");
  ASSERT_EQ(::symlink((root_ / "keep").c_str(), (root_ / "gone" / "to_keep").c_str()), 0);
  ASSERT_TRUE(remove_tree(root_ / "gone").ok());
  EXPECT_FALSE(fs::exists(root_ / "gone"));
  EXPECT_TRUE(fs::exists(root_ / "keep" / "precious"));
  EXPECT_TRUE(remove_tree(root_ / "gone").ok());  // absent: nothing to do
}

// replace_directory puts a staged folder in place over nothing, an empty folder or a full one (exchanged: the old
// contents are deleted afterwards, never before); a missing staged folder is an error that leaves the target alone.
TEST_F(FilesTest, ReplaceDirectoryPutsAStagedFolderInPlaceWhole) {
  const auto target = root_ / "target";
  for (const char* before : {"absent", "empty", "full"}) {
    SCOPED_TRACE(before);
    ASSERT_TRUE(remove_tree(target).ok());
    if (std::string(before) != "absent") ASSERT_TRUE(fs::create_directories(target).ok());
    if (std::string(before) == "full") write(target / "old", "old");
    ASSERT_TRUE(fs::create_directories(root_ / "staged").ok());
    write(root_ / "staged" / "new", "new");
    ASSERT_TRUE(fs::replace_directory(root_ / "staged", target).ok());
    EXPECT_TRUE(fs::exists(target / "new"));
    EXPECT_FALSE(fs::exists(target / "old"));
    EXPECT_FALSE(fs::exists(root_ / "staged"));
  }
  EXPECT_FALSE(fs::replace_directory(root_ / "missing", target).ok());
  EXPECT_TRUE(fs::exists(target / "new"));
  EXPECT_TRUE(fs::sync_directory(target).ok());
  EXPECT_FALSE(fs::sync_directory(root_ / "missing").ok());
}

}  // namespace
}  // namespace loft
