// Topic templates, written once (daemon/config/topic_template.h): the configuration checks
// them, the event router expands them.
#include "daemon/config/topic_template.h"

#include <string>

#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::zb::testing::IsOk;

TEST(TopicTemplateTest, ExpandsTypeAndAccountEverywhereTheyAppear) {
  EXPECT_EQ(ExpandTopic("zulip.{type}", "message", "alice"), "zulip.message");
  EXPECT_EQ(ExpandTopic("{account}.{type}.{account}", "reaction", "bob"), "bob.reaction.bob");
  EXPECT_EQ(ExpandTopic("all.typing", "typing", "bob"), "all.typing");
  EXPECT_EQ(ExpandTopic("", "message", "alice"), "");
}

TEST(TopicTemplateTest, KeepsOtherTextAsWritten) {
  EXPECT_EQ(ExpandTopic("z.{site}.{type}", "stream", "a"), "z.{site}.stream");
  EXPECT_EQ(ExpandTopic("{{type}}", "message", "a"), "{message}");
  EXPECT_EQ(ExpandTopic("{type", "message", "a"), "{type");
  // The substitute is not expanded again.
  EXPECT_EQ(ExpandTopic("{type}", "{account}", "a"), "{account}");
}

TEST(TopicTemplateTest, AppendTopicAppendsAndReusesTheBuffer) {
  std::string out = "prefix:";
  out.reserve(64);
  const char* buffer = out.data();
  AppendTopic("zulip.{account}.{type}", "message", "alice", out);
  EXPECT_EQ(out, "prefix:zulip.alice.message");
  EXPECT_EQ(out.data(), buffer);
}

TEST(TopicTemplateTest, TellsWhetherTheAccountIsNamed) {
  EXPECT_TRUE(TopicNamesAccount("zulip.{account}.{type}"));
  EXPECT_FALSE(TopicNamesAccount("zulip.{type}"));
  EXPECT_FALSE(TopicNamesAccount("zulip.{accounts}"));
}

TEST(TopicTemplateTest, ChecksPlaceholdersWithTheLoadersMessages) {
  EXPECT_THAT(CheckTopicTemplatePlaceholders("zulip.{type}"), IsOk());
  EXPECT_THAT(CheckTopicTemplatePlaceholders("z.{account}.{type}.{account}"), IsOk());
  EXPECT_THAT(CheckTopicTemplatePlaceholders("plain"), IsOk());
  Status s = CheckTopicTemplatePlaceholders("zulip.{site}");
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.message(), "unknown placeholder {site}; expected {type}, {account}");
  EXPECT_EQ(CheckTopicTemplatePlaceholders("zulip.type}").message(),
            "a '}' without '{'; expected placeholders {type}, {account}");
  EXPECT_EQ(CheckTopicTemplatePlaceholders("zulip.{type").message(),
            "an unterminated '{'; expected placeholders {type}, {account}");
}

TEST(TopicTemplateTest, EveryKnownPlaceholderExpands) {
  for (std::string_view placeholder : kTopicPlaceholders) {
    EXPECT_NE(ExpandTopic(placeholder, "t", "a"), placeholder) << placeholder;
  }
}

}  // namespace
}  // namespace zb
