#include "daemon/base/status.h"

#include <cstring>

namespace zb {

namespace {

// strerror_r comes in two shapes: glibc's GNU one (what g++ and clang++ give us, as they define
// _GNU_SOURCE) returns the text, which may or may not be in `buffer`; the POSIX one returns 0
// and fills `buffer`. Overloading on the result type takes whichever the headers declare.
[[maybe_unused]] const char* StrerrorText(const char* text, const char* /*buffer*/) { return text; }
[[maybe_unused]] const char* StrerrorText(int rc, const char* buffer) {
  return rc == 0 ? buffer : nullptr;
}

}  // namespace

std::string ErrnoText(int errno_value) {
  char buffer[256] = {};
  const char* text = StrerrorText(strerror_r(errno_value, buffer, sizeof buffer), buffer);
  if (text == nullptr) return "Unknown error " + std::to_string(errno_value);
  return text;
}

std::string_view CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk:
      return "OK";
    case Status::Code::kInvalidArgument:
      return "InvalidArgument";
    case Status::Code::kNotFound:
      return "NotFound";
    case Status::Code::kCorruption:
      return "Corruption";
    case Status::Code::kIOError:
      return "IOError";
    case Status::Code::kUnavailable:
      return "Unavailable";
    case Status::Code::kUnauthenticated:
      return "Unauthenticated";
    case Status::Code::kFatal:
      return "Fatal";
  }
  return "Unknown";
}

Status Status::FromErrno(std::string_view what, int errno_value) {
  std::string msg(what);
  msg += ": ";
  msg += ErrnoText(errno_value);
  return IOError(std::move(msg));
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(CodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

std::ostream& operator<<(std::ostream& os, const Status& status) { return os << status.ToString(); }

}  // namespace zb
