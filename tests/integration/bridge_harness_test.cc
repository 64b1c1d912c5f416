// The harness's own pure helpers; no broker needed.
#include "tests/integration/bridge_harness.h"

#include <gtest/gtest.h>

namespace zb::testing {
namespace {

TEST(BridgeHarnessTest, AccountYamlIsOneItemOfTheAccountsListWithItsExtraLinesLast) {
  EXPECT_EQ(AccountYaml("alpha", "http://127.0.0.1:9", "a@example.com", "/k/alpha.key"),
            "  - name: alpha\n    site: http://127.0.0.1:9\n    email: a@example.com\n"
            "    api_key_file: /k/alpha.key\n");
  EXPECT_EQ(AccountYaml("b", "s", "e", "f", "    all_public_streams: true\n"),
            "  - name: b\n    site: s\n    email: e\n    api_key_file: f\n"
            "    all_public_streams: true\n");
}

}  // namespace
}  // namespace zb::testing
