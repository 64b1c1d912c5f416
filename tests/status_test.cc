#include "daemon/base/status.h"

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::zb::testing::IsOk;

TEST(StatusTest, DefaultIsOkAndPrintsOk) {
  Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.ToString(), "OK");
  EXPECT_THAT(status, IsOk());
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status status = Status::InvalidArgument("zulip-bridge.yaml:12: accounts[0].api_key missing");
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(status.IsInvalidArgument());
  EXPECT_EQ(status.ToString(),
            "InvalidArgument: zulip-bridge.yaml:12: accounts[0].api_key missing");
}

TEST(StatusTest, OnlyUnavailableIsRetryable) {
  EXPECT_TRUE(Status::Unavailable("429").IsRetryable());
  EXPECT_FALSE(Status::Unauthenticated("401").IsRetryable());
  EXPECT_FALSE(Status::Fatal("x").IsRetryable());
  EXPECT_FALSE(Status::IOError("x").IsRetryable());
  EXPECT_FALSE(Status::Ok().IsRetryable());
}

TEST(StatusTest, FromErrnoNamesPathAndReason) {
  Status status = Status::FromErrno("/var/lib/zulip-bridge/x.ckpt", ENOSPC);
  EXPECT_TRUE(status.IsIOError());
  EXPECT_EQ(status.message(), "/var/lib/zulip-bridge/x.ckpt: No space left on device");
}

TEST(StatusTest, ErrnoTextIsStrerrorsText) {
  EXPECT_EQ(ErrnoText(ENOENT), "No such file or directory");
  EXPECT_EQ(ErrnoText(ENOSPC), "No space left on device");
  EXPECT_EQ(ErrnoText(EINTR), std::strerror(EINTR));
}

TEST(StatusTest, ErrnoTextNamesAnUnknownValue) {
  EXPECT_EQ(ErrnoText(99999), "Unknown error 99999");
}

TEST(StatusTest, WithContextPrefixesErrorsAndLeavesOkAlone) {
  EXPECT_EQ(Status::NotFound("no such queue").WithContext("account alice").message(),
            "account alice: no such queue");
  EXPECT_TRUE(Status::Ok().WithContext("account alice").ok());
}

StatusOr<int> Half(int n) {
  if (n % 2 != 0) return Status::InvalidArgument(std::to_string(n) + " is odd");
  return n / 2;
}

Status HalveTwice(int n, int* out) {
  StatusOr<int> once = Half(n);
  ZB_RETURN_IF_ERROR(once.status());
  StatusOr<int> twice = Half(*once);
  ZB_RETURN_IF_ERROR(twice.status());
  *out = *twice;
  return Status::Ok();
}

TEST(StatusOrTest, HoldsValueOrError) {
  StatusOr<int> good = Half(8);
  ASSERT_THAT(good, IsOk());
  EXPECT_EQ(*good, 4);
  StatusOr<int> bad = Half(3);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "3 is odd");
}

TEST(StatusOrTest, ReturnIfErrorStopsAtFirstError) {
  int out = -1;
  EXPECT_THAT(HalveTwice(12, &out), IsOk());
  EXPECT_EQ(out, 3);
  out = -1;
  Status status = HalveTwice(6, &out);  // 6 -> 3, and 3 is odd
  EXPECT_EQ(status.message(), "3 is odd");
  EXPECT_EQ(out, -1);
}

TEST(StatusOrDeathTest, ValueOfErrorAborts) {
  StatusOr<int> bad = Status::NotFound("gone");
  EXPECT_DEATH((void)bad.value(), "");
}

}  // namespace
}  // namespace zb
