// Status and StatusOr: the rules of errors as values.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <type_traits>

#include "loft/status.h"

namespace loft {
namespace {

TEST(StatusOr, HoldsAValueOrAnError) {
  StatusOr<int> v(7);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v.value(), 7);
  EXPECT_TRUE(v.status().ok());
  StatusOr<int> e(Status::NotFound("no such thing"));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e.status().message(), "no such thing");
}

TEST(StatusOr, AnOkStatusWithoutAValueBecomesAnInternalError) {
  StatusOr<std::string> s(Status::Ok());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInternal);
  EXPECT_NE(s.status().message().find("OK status and no value"), std::string::npos);
}

TEST(StatusOr, ValueOfAnErrorThrowsWithTheErrorsMessage) {
  StatusOr<int> e(Status::InvalidArgument("bad lr"));
  try {
    (void)e.value();
    FAIL() << "value() of an error returned";
  } catch (const BadStatusOrAccess& ex) {
    EXPECT_NE(std::string(ex.what()).find("bad lr"), std::string::npos) << ex.what();
  }
  const StatusOr<int>& c = e;
  EXPECT_THROW((void)c.value(), BadStatusOrAccess);
  EXPECT_THROW((void)std::move(e).value(), BadStatusOrAccess);
}

TEST(StatusOr, MoveOnlyValuesMoveOut) {
  StatusOr<std::unique_ptr<int>> p(std::make_unique<int>(3));
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> out = std::move(p).value();
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(*out, 3);
}

}  // namespace
}  // namespace loft
