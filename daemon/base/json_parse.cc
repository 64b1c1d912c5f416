#include "daemon/base/json_parse.h"

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <string>

namespace zb {
namespace {

// Passes every SAX event on to the document being built, counting the containers open; past
// the limit it stops the reader, which then reports kParseErrorTermination at that byte.
class DepthLimitedHandler {
 public:
  explicit DepthLimitedHandler(rapidjson::Document& doc) : doc_(doc) {}

  bool too_deep() const { return too_deep_; }

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return doc_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return doc_.String(s, n, copy); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return doc_.Key(s, n, copy); }
  bool StartObject() { return Open() && doc_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return doc_.EndObject(members);
  }
  bool StartArray() { return Open() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return doc_.EndArray(elements);
  }

 private:
  bool Open() {
    if (depth_ >= kMaxJsonDepth) {
      too_deep_ = true;
      return false;
    }
    ++depth_;
    return true;
  }

  rapidjson::Document& doc_;
  size_t depth_ = 0;
  bool too_deep_ = false;
};

}  // namespace

Status ParseJson(std::string_view text, rapidjson::Document& doc) {
  rapidjson::ParseResult result;
  bool too_deep = false;
  // Populate() takes the one root value the handler left on the document's stack, and only
  // when the generator says the parse succeeded.
  auto generate = [&](rapidjson::Document& target) {
    DepthLimitedHandler handler(target);
    rapidjson::MemoryStream bytes(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(bytes);
    rapidjson::Reader reader;
    result = reader.Parse<rapidjson::kParseIterativeFlag>(in, handler);
    too_deep = handler.too_deep();
    return !result.IsError();
  };
  doc.Populate(generate);
  if (!result.IsError()) return Status::Ok();
  const std::string where = " at byte offset " + std::to_string(result.Offset());
  if (too_deep) {
    return Status::Corruption("nesting deeper than " + std::to_string(kMaxJsonDepth) + where);
  }
  return Status::Corruption(std::string(rapidjson::GetParseError_En(result.Code())) + where);
}

}  // namespace zb
