#include "daemon/zulip/event_splitter.h"

#include <charconv>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "tests/test_support.h"

namespace zb {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::zb::testing::IsOk;

std::vector<std::string> LoadExamples() {
  std::ifstream in(std::string(ZB_SOURCE_DIR) + "/tests/testdata/zulip/event-examples.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::string Wrap(const std::vector<std::string>& events) {
  std::string body = R"({"result":"success","msg":"","events":[)";
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0) body += ", ";
    body += events[i];
  }
  body += R"(],"queue_id":"1517975029:0"})";
  return body;
}

// Everything one splitter produced over a body fed in the given chunk sizes.
struct Split {
  Status status;
  std::vector<std::string> events;
  std::string envelope;
};

Split SplitInChunks(std::string_view body, const std::vector<size_t>& cuts) {
  Split out;
  EventSplitter splitter([&out](std::string_view e) {
    out.events.emplace_back(e);
    return true;
  });
  size_t pos = 0;
  auto feed = [&](std::string_view chunk) -> bool {
    StatusOr<size_t> used = splitter.Feed(chunk);
    if (!used.ok()) {
      out.status = used.status();
      return false;
    }
    EXPECT_EQ(*used, chunk.size());
    return true;
  };
  for (size_t cut : cuts) {
    if (!feed(body.substr(pos, cut - pos))) return out;
    pos = cut;
  }
  if (!feed(body.substr(pos))) return out;
  out.status = splitter.Finish();
  out.envelope = splitter.envelope();
  return out;
}

Split SplitOneByteAtATime(std::string_view body) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < body.size(); ++i) cuts.push_back(i);
  return SplitInChunks(body, cuts);
}

TEST(EventSplitterTest, EveryExampleComesBackByteIdenticalWhereverTheBodyIsCut) {
  std::vector<std::string> examples = LoadExamples();
  ASSERT_GT(examples.size(), 50u);
  for (const std::string& example : examples) {
    std::string body = Wrap({example});
    for (size_t cut = 0; cut <= body.size(); ++cut) {
      Split split = SplitInChunks(body, {cut});
      ASSERT_THAT(split.status, IsOk()) << "cut at " << cut << " of " << body;
      ASSERT_THAT(split.events, ElementsAre(example)) << "cut at " << cut;
    }
  }
}

TEST(EventSplitterTest, AllExamplesInOneBatchSurviveOneByteChunks) {
  std::vector<std::string> examples = LoadExamples();
  Split split = SplitOneByteAtATime(Wrap(examples));
  ASSERT_THAT(split.status, IsOk());
  EXPECT_EQ(split.events, examples);
  EXPECT_EQ(split.envelope,
            R"({"result":"success","msg":"","events":[],"queue_id":"1517975029:0"})");
}

TEST(EventSplitterTest, AdversarialEventsComeBackExactly) {
  const std::vector<std::string> events = {
      R"({"type":"message","message":{"content":"]}{[\"events\":[1,2]}"},"id":1})",
      R"({"events":[{"id":99}],"type":"x","id":2})",
      R"({"s":"back\\slash\\","t":"quote\"\\\"","id":3})",
      "{\"u\":\"\\u00e9\\u2028\\ud83d\\ude00 caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x80\xa8\",\"id\":4}",
      "{ \"a\" :\t[ 1 , -0.5e+3 , 2E7 , true , false , null , { } , [ ] ] ,\r\n \"id\" : 5 }",
      R"("a bare string, with ] and } inside")",
      R"(-12.5e-3)",
      R"(true)",
      R"(null)",
      R"([[["deep"]],{"x":[{"y":{}}]}])",
      R"({"esc":"\/\b\f\n\r\t","id":6})",
  };
  std::string body = "\n { \"msg\" : \"\" , \"events\" :\n[ ";
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0) body += " ,\n\t";
    body += events[i];
  }
  body += " ] , \"result\" : \"success\" }\n";
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    Split split = SplitInChunks(body, {cut});
    ASSERT_THAT(split.status, IsOk()) << "cut at " << cut;
    ASSERT_EQ(split.events, events) << "cut at " << cut;
  }
  Split bytes = SplitOneByteAtATime(body);
  ASSERT_THAT(bytes.status, IsOk());
  EXPECT_EQ(bytes.events, events);
}

TEST(EventSplitterTest, OnlyTheTopLevelEventsKeyIsTheArray) {
  Split split = SplitOneByteAtATime(
      R"({"extra":{"events":[{"id":1}]},"x":["events",{"events":[2]}],"events":[{"id":3}],)"
      R"("more":"events"})");
  ASSERT_THAT(split.status, IsOk());
  EXPECT_THAT(split.events, ElementsAre(R"({"id":3})"));
}

TEST(EventSplitterTest, EmptyBatchGivesNoEvents) {
  Split split = SplitOneByteAtATime(R"({"result":"success","msg":"","events":[ ]})");
  ASSERT_THAT(split.status, IsOk());
  EXPECT_TRUE(split.events.empty());
  EXPECT_EQ(split.envelope, R"({"result":"success","msg":"","events":[]})");
}

TEST(EventSplitterTest, ErrorResponseExposesResultMsgAndCode) {
  EventSplitter splitter([](std::string_view) { return true; });
  std::string body =
      R"({"result":"error","msg":"Bad event queue ID: 1:2","code":"BAD_EVENT_QUEUE_ID",)"
      R"("queue_id":"1:2"})";
  ASSERT_THAT(splitter.Feed(body), IsOk());
  ASSERT_THAT(splitter.Finish(), IsOk());
  EXPECT_FALSE(splitter.has_events());
  EXPECT_EQ(splitter.result(), "error");
  EXPECT_EQ(splitter.msg(), "Bad event queue ID: 1:2");
  EXPECT_EQ(splitter.code(), "BAD_EVENT_QUEUE_ID");
  EXPECT_EQ(splitter.queue_id(), "1:2");
  EXPECT_EQ(splitter.envelope(), body);
}

TEST(EventSplitterTest, EveryTruncationIsCorruption) {
  std::string body = Wrap({R"({"type":"heartbeat","id":7})", R"({"s":"a\"]}","n":-1.5e3,"id":8})"});
  for (size_t len = 0; len < body.size(); ++len) {
    EventSplitter splitter([](std::string_view) { return true; });
    ASSERT_THAT(splitter.Feed(body.substr(0, len)), IsOk()) << len;
    Status finished = splitter.Finish();
    ASSERT_TRUE(finished.IsCorruption()) << len << ": " << finished;
    EXPECT_THAT(finished.message(), HasSubstr("byte offset " + std::to_string(len)));
  }
}

TEST(EventSplitterTest, MalformedBodiesAreCorruptionWithTheOffset) {
  struct Case {
    std::string body;
    size_t offset;
  };
  const std::vector<Case> cases = {
      {R"([1,2])", 0},
      {R"({"events":[{"a":1}}])", 18},
      {R"({"events":[{"a" 1}]})", 16},
      {R"({"events":[{"a":01}]})", 17},
      {R"({"events":[{"a":"\x"}]})", 18},
      {R"({"events":[{"a":"\u12G4"}]})", 21},
      {R"({"events":[tru]})", 14},
      {R"({"events":[1,]})", 13},
      {R"({"events":[],"events":[]})", 22},
      {R"({"events":[]} x)", 14},
      {"{\"events\":[\"a\nb\"]}", 13},
      {R"({"events":[{"a":-}]})", 17},
      {R"({"events":[{"a":1.}]})", 18},
      {R"({"events":[{"a":1e}]})", 18},
      {R"({"a":1,})", 7},
  };
  for (const Case& c : cases) {
    Split split = SplitOneByteAtATime(c.body);
    ASSERT_TRUE(split.status.IsCorruption()) << c.body << " -> " << split.status;
    EXPECT_THAT(split.status.message(), HasSubstr("byte offset " + std::to_string(c.offset)))
        << c.body;
    Split whole = SplitInChunks(c.body, {});
    EXPECT_EQ(whole.status, split.status) << c.body;
  }
}

// Random damage to valid bodies: the splitter must accept exactly the bodies a full JSON parser
// accepts (RapidJSON here), and find the same number of events.
TEST(EventSplitterTest, AcceptsExactlyWhatAJsonParserAccepts) {
  std::vector<std::string> examples = LoadExamples();
  const std::vector<std::string> bases = {
      Wrap({examples.begin(), examples.begin() + 8}),
      R"({"a":[1,-2.5e+3,true,false,null,{"b":"c\"]}\\"}],"events":[{"id":1,"s":"\u00e9"},[],0]})",
  };
  const std::string alphabet = "{}[]\",:\\ \n0123456789.eE+-tfnulrsua\x01\xc3";
  std::mt19937 rng(42);
  int accepted = 0, rejected = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string body = bases[round % bases.size()];
    const int mutations = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations; ++m) {
      const size_t pos = rng() % body.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          body[pos] = c;
          break;
        case 1:
          body.insert(body.begin() + static_cast<std::ptrdiff_t>(pos), c);
          break;
        default:
          body.erase(pos, 1);
          break;
      }
    }
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    // Lone surrogates are a RapidJSON strictness the splitter does not share (it passes the
    // bytes on untouched); skip them.
    if (doc.HasParseError() &&
        doc.GetParseError() == rapidjson::kParseErrorStringUnicodeSurrogateInvalid) {
      continue;
    }
    const bool parser_ok = !doc.HasParseError() && doc.IsObject();
    Split split = SplitInChunks(body, {rng() % (body.size() + 1)});
    if (!split.status.ok() &&
        split.status.message().find("second \"events\"") != std::string::npos) {
      continue;  // duplicate keys are valid JSON; the splitter refuses two events arrays
    }
    ASSERT_EQ(split.status.ok(), parser_ok) << split.status << "\n" << body;
    if (!parser_ok) {
      ++rejected;
      continue;
    }
    ++accepted;
    auto events = doc.FindMember("events");
    const size_t expected =
        events != doc.MemberEnd() && events->value.IsArray() ? events->value.Size() : 0;
    ASSERT_EQ(split.events.size(), expected) << body;
  }
  // Both outcomes must have been exercised for the comparison to mean anything.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 1000);
}

TEST(EventSplitterTest, ErrorsAreSticky) {
  EventSplitter splitter([](std::string_view) { return true; });
  EXPECT_FALSE(splitter.Feed("{]").ok());
  EXPECT_TRUE(splitter.Feed("}").status().IsCorruption());
  EXPECT_TRUE(splitter.Finish().IsCorruption());
}

TEST(EventSplitterTest, RefusedEventIsHeldAndOfferedAgain) {
  std::vector<std::string> got;
  bool room = true;
  EventSplitter splitter([&](std::string_view e) {
    if (!room) return false;
    got.emplace_back(e);
    return true;
  });
  std::string body = R"({"events":[{"id":1},{"id":2},{"id":3}]})";
  room = false;
  StatusOr<size_t> used = splitter.Feed(body);
  ASSERT_THAT(used, IsOk());
  EXPECT_EQ(*used, std::string(R"({"events":[{"id":1})").size());
  EXPECT_TRUE(splitter.paused());
  EXPECT_TRUE(got.empty());
  // Still no room: nothing moves.
  used = splitter.Feed(std::string_view(body).substr(19));
  ASSERT_THAT(used, IsOk());
  EXPECT_EQ(*used, 0u);
  ASSERT_THAT(splitter.Resume(), IsOk());
  EXPECT_TRUE(splitter.paused());
  room = true;
  ASSERT_THAT(splitter.Resume(), IsOk());
  EXPECT_FALSE(splitter.paused());
  EXPECT_THAT(got, ElementsAre(R"({"id":1})"));
  used = splitter.Feed(std::string_view(body).substr(19));
  ASSERT_THAT(used, IsOk());
  EXPECT_EQ(*used, body.size() - 19);
  ASSERT_THAT(splitter.Finish(), IsOk());
  EXPECT_THAT(got, ElementsAre(R"({"id":1})", R"({"id":2})", R"({"id":3})"));
}

TEST(EventSplitterTest, FinishWhileAnEventIsRefusedIsUnavailable) {
  bool room = false;
  EventSplitter splitter([&](std::string_view) { return room; });
  ASSERT_THAT(splitter.Feed(R"({"events":[5]})"), IsOk());
  EXPECT_TRUE(splitter.paused());
  EXPECT_TRUE(splitter.Finish().IsUnavailable());
  room = true;
  // The body's last bytes were not consumed yet: offer them, then finish.
  ASSERT_THAT(splitter.Feed("]}"), IsOk());
  EXPECT_THAT(splitter.Finish(), IsOk());
  EXPECT_EQ(splitter.events_taken(), 1u);
}

// Drives the splitter the way libcurl drives a write callback: a chunk is taken whole or the
// transfer pauses, and after unpausing the same bytes come again from the start of the refused
// chunk, possibly merged with later data into a bigger chunk.
TEST(EventSplitterTest, AllOrPauseFitsLibcurlsReplayOfTheRefusedChunk) {
  std::vector<std::string> examples = LoadExamples();
  std::string body = Wrap(examples);
  for (size_t chunk_size : {1u, 7u, 100u, 4096u}) {
    std::vector<std::string> got;
    int calls = 0;
    // Refuses every third offer, so pauses land everywhere.
    EventSplitter splitter([&](std::string_view e) {
      if (++calls % 3 == 0) return false;
      got.emplace_back(e);
      return true;
    });
    size_t pos = 0;  // start of the data the "transport" still has to deliver
    bool merge = false;
    int pauses = 0;
    while (pos < body.size()) {
      // After a pause, alternate between replaying the same chunk and a bigger merged one.
      size_t len = std::min(body.size() - pos, merge ? 2 * chunk_size : chunk_size);
      StatusOr<bool> taken = splitter.FeedAllOrPause(std::string_view(body).substr(pos, len));
      ASSERT_THAT(taken, IsOk());
      if (*taken) {
        pos += len;
        merge = false;
      } else {
        ++pauses;
        merge = !merge;
        ASSERT_THAT(splitter.Resume(), IsOk());  // "Kafka has room again", maybe
      }
    }
    Status finished = splitter.Finish();
    while (finished.IsUnavailable()) finished = splitter.Finish();
    ASSERT_THAT(finished, IsOk());
    EXPECT_GT(pauses, 0);
    EXPECT_EQ(got, examples) << "chunk size " << chunk_size;
  }
}

// Yields the body of a batch of `count` events in pieces, without ever holding all of it.
class BigBatch {
 public:
  explicit BigBatch(int count) : count_(count) { pending_ = R"({"result":"success","events":[)"; }
  // The next chunk of at most `size` bytes; empty at the end.
  std::string Next(size_t size) {
    while (pending_.size() < size && next_ <= count_) {
      if (next_ == count_) {
        pending_ += R"(],"msg":""})";
      } else {
        if (next_ > 0) pending_ += ',';
        AppendEvent(next_, pending_);
      }
      ++next_;
    }
    std::string chunk = pending_.substr(0, std::min(size, pending_.size()));
    pending_.erase(0, chunk.size());
    return chunk;
  }
  // Appends event `i` to `out` (no temporaries: this runs half a million times under ASan).
  static void AppendEvent(int i, std::string& out) {
    char id[16];
    const size_t len = static_cast<size_t>(std::to_chars(id, id + sizeof(id), i).ptr - id);
    out += R"({"type":"message","message":{"id":)";
    out.append(id, len);
    out += R"(,"content":"<p>[brackets] {braces} \"quotes\" caf\u00e9</p>","subject":"t"},)"
           R"("flags":[],"id":)";
    out.append(id, len);
    out += '}';
  }

 private:
  int count_;
  int next_ = 0;
  std::string pending_;
};

TEST(EventSplitterTest, HalfAMillionEventsInSixteenKibChunksNeedBoundedMemory) {
  constexpr int kEvents = 500000;
  constexpr size_t kChunk = 16 * 1024;
  int expected = 0;
  bool all_match = true;
  std::string want;
  EventSplitter splitter([&](std::string_view e) {
    want.clear();
    BigBatch::AppendEvent(expected, want);
    if (e != want) all_match = false;
    ++expected;
    return true;
  });
  BigBatch batch(kEvents);
  size_t max_capacity = 0;
  uint64_t total = 0;
  for (std::string chunk = batch.Next(kChunk); !chunk.empty(); chunk = batch.Next(kChunk)) {
    StatusOr<size_t> used = splitter.Feed(chunk);
    ASSERT_THAT(used, IsOk());
    ASSERT_EQ(*used, chunk.size());
    total += chunk.size();
    max_capacity = std::max(max_capacity, splitter.BufferCapacityForTest());
  }
  ASSERT_THAT(splitter.Finish(), IsOk());
  EXPECT_EQ(expected, kEvents);
  EXPECT_TRUE(all_match);
  EXPECT_EQ(splitter.events_taken(), static_cast<uint64_t>(kEvents));
  EXPECT_EQ(splitter.bytes_consumed(), total);
  EXPECT_GT(total, 50u * 1000 * 1000);
  // One event is ~150 bytes: the splitter holds a partial event and the envelope, never a chunk.
  EXPECT_LT(max_capacity, 4096u);
}

TEST(EventSplitterTest, OversizedEnvelopeIsCorruption) {
  EventSplitter splitter([](std::string_view) { return true; });
  std::string body = R"({"msg":")" + std::string(EventSplitter::kMaxEnvelopeBytes, 'x') + "\"}";
  EXPECT_TRUE(splitter.Feed(body).status().IsCorruption());
}

// 200,000 levels overflowed the stack of a recursive parser; a GET /events body or a single
// event nested that deep is a bad body, not a crash.
TEST(EventSplitterTest, EventsBodyNestedTwoHundredThousandDeepIsCorruption) {
  const size_t depth = 200'000;
  std::string body = R"({"result":"success","events":[)" + std::string(depth, '[') +
                     std::string(depth, ']') + "]}";
  Split split = SplitInChunks(body, {body.size() / 3, body.size() / 2});
  EXPECT_TRUE(split.status.IsCorruption()) << split.status.message();
  EXPECT_THAT(split.status.message(), HasSubstr("nesting deeper than 512"));
  EXPECT_TRUE(split.events.empty());
}

TEST(ParseEventHeaderTest, EventNestedTwoHundredThousandDeepIsInvalidArgument) {
  const size_t depth = 200'000;
  std::string event =
      R"({"id":1,"type":"x","deep":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
  StatusOr<EventHeader> header = ParseEventHeader(event);
  EXPECT_TRUE(header.status().IsInvalidArgument());
  EXPECT_THAT(header.status().message(), HasSubstr("nesting deeper than 512"));
}

TEST(ParseEventHeaderTest, ChannelMessage) {
  StatusOr<EventHeader> header =
      ParseEventHeader(R"({"type":"message","flags":[],"id":12,"message":{"id":31,"stream_id":1,)"
                       R"("display_recipient":"Denmark","subject":"greet [x]","type":"stream"}})");
  ASSERT_THAT(header, IsOk());
  EXPECT_EQ(header->id, 12);
  EXPECT_EQ(header->type, "message");
  EXPECT_EQ(header->message_id, 31);
  EXPECT_EQ(header->stream_id, 1);
  EXPECT_EQ(header->topic, "greet [x]");
  EXPECT_TRUE(header->dm_user_ids.empty());
}

TEST(ParseEventHeaderTest, TopicFieldIsUsedWhenThereIsNoSubject) {
  StatusOr<EventHeader> header = ParseEventHeader(
      R"({"type":"message","id":1,"message":{"id":2,"stream_id":3,"topic":"t\u00e9"}})");
  ASSERT_THAT(header, IsOk());
  EXPECT_EQ(header->topic, "t\xc3\xa9");
}

TEST(ParseEventHeaderTest, DirectMessageListsSortedUserIds) {
  StatusOr<EventHeader> header = ParseEventHeader(
      R"({"id":4,"type":"message","message":{"id":99,"type":"private","subject":"",)"
      R"("display_recipient":[{"id":31572,"email":"h@x"},{"id":8,"email":"o@x"},)"
      R"({"id":1000,"email":"i@x"}]}})");
  ASSERT_THAT(header, IsOk());
  EXPECT_EQ(header->message_id, 99);
  EXPECT_FALSE(header->stream_id.has_value());
  EXPECT_THAT(header->dm_user_ids, ElementsAre(8, 1000, 31572));
}

TEST(ParseEventHeaderTest, Heartbeat) {
  StatusOr<EventHeader> header = ParseEventHeader(R"({"type":"heartbeat","id":77})");
  ASSERT_THAT(header, IsOk());
  EXPECT_EQ(header->id, 77);
  EXPECT_EQ(header->type, "heartbeat");
  EXPECT_FALSE(header->message_id.has_value());
}

TEST(ParseEventHeaderTest, MissingOrBadIdIsInvalidArgument) {
  EXPECT_TRUE(ParseEventHeader(R"({"type":"heartbeat"})").status().IsInvalidArgument());
  EXPECT_TRUE(ParseEventHeader(R"({"type":"heartbeat","id":"7"})").status().IsInvalidArgument());
  EXPECT_TRUE(ParseEventHeader(R"({"id":7})").status().IsInvalidArgument());
  EXPECT_TRUE(ParseEventHeader(R"({"id":7,"type":"message"})").status().IsInvalidArgument());
  EXPECT_TRUE(ParseEventHeader(R"([1])").status().IsInvalidArgument());
  EXPECT_TRUE(ParseEventHeader(R"({"id":7,)").status().IsInvalidArgument());
}

TEST(ParseEventHeaderTest, EveryExampleHasAnIdAndAType) {
  for (const std::string& example : LoadExamples()) {
    StatusOr<EventHeader> header = ParseEventHeader(example);
    if (!header.ok()) {
      // A few documentation examples leave the queue's id out; a real event always has one.
      EXPECT_THAT(header.status().message(), HasSubstr("no integer \"id\"")) << example;
      header = ParseEventHeader("{\"id\": 1000, " + example.substr(1));
    }
    ASSERT_THAT(header, IsOk()) << example;
    EXPECT_FALSE(header->type.empty());
    if (header->type == "message") {
      EXPECT_TRUE(header->message_id.has_value());
    }
  }
}

}  // namespace
}  // namespace zb
