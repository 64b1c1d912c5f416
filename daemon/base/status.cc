#include "daemon/base/status.h"

#include <cstring>

namespace zb {

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
  msg += std::strerror(errno_value);
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
