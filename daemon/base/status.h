// Status and StatusOr<T>: how every steady-state operation in zulip-bridge reports failure.
//
// A Status is a small value: a code and a message. The message is meant for an operator and
// names what went wrong and where (file and line, account, event id, path and errno text); it
// never contains a secret. Exceptions never cross a component boundary: a component that calls
// a throwing library catches at its edge and returns a Status.
//
// Both are [[nodiscard]] and the build makes an unread one an error (-Werror=unused-result):
// a caller handles the failure or writes `(void)` with a comment saying why it may be ignored.
#ifndef ZB_DAEMON_BASE_STATUS_H_
#define ZB_DAEMON_BASE_STATUS_H_

#include <cstdlib>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace zb {

// The text of errno value `errno_value` ("No such file or directory"), as strerror gives it,
// but safe to call from any thread at once (strerror may share one buffer between threads).
// "Unknown error N" for a value the C library does not know.
std::string ErrnoText(int errno_value);

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // bad input: configuration, a malformed response, a bad flag
    kNotFound,         // something asked for does not exist (a checkpoint, a file)
    kCorruption,       // stored data failed to parse or verify
    kIOError,          // a system call failed; the message carries the path and strerror
    kUnavailable,      // transient: retry after backoff (HTTP 429/5xx, timeouts, Kafka down)
    kUnauthenticated,  // permanent for an account: park it (HTTP 401)
    kFatal,            // the process cannot go on safely
  };

  Status() = default;  // OK

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return {Code::kInvalidArgument, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status IOError(std::string msg) { return {Code::kIOError, std::move(msg)}; }
  // "what: ErrnoText(errno_value)", for a failed system call on `what` (usually a path).
  static Status FromErrno(std::string_view what, int errno_value);
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status Unauthenticated(std::string msg) {
    return {Code::kUnauthenticated, std::move(msg)};
  }
  static Status Fatal(std::string msg) { return {Code::kFatal, std::move(msg)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsUnavailable() const { return code_ == Code::kUnavailable; }
  bool IsUnauthenticated() const { return code_ == Code::kUnauthenticated; }
  bool IsFatal() const { return code_ == Code::kFatal; }
  // True when the same operation may succeed later without anything being changed by hand.
  bool IsRetryable() const { return code_ == Code::kUnavailable; }

  // The same status with "context: " put before the message; OK stays OK.
  Status WithContext(std::string_view context) const;

  // "OK", or "<Code name>: <message>".
  std::string ToString() const;

  friend bool operator==(const Status&, const Status&) = default;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

std::string_view CodeName(Status::Code code);
std::ostream& operator<<(std::ostream& os, const Status& status);

// Either a value or a non-OK Status. Accessing the value of an error aborts: that is a bug in
// the caller, not a condition to recover from.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const T& value) : value_(value) {}             // NOLINT(google-explicit-constructor)
  StatusOr(T&& value) : value_(std::move(value)) {}       // NOLINT(google-explicit-constructor)
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.ok()) std::abort();                       // an OK status carries no value
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    Check();
    return *value_;
  }
  const T& value() const& {
    Check();
    return *value_;
  }
  T&& value() && {
    Check();
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void Check() const {
    if (!value_) std::abort();
  }

  Status status_;
  std::optional<T> value_;
};

}  // namespace zb

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define ZB_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::zb::Status zb_status_ = (expr);        \
    if (!zb_status_.ok()) return zb_status_; \
  } while (0)

#endif  // ZB_DAEMON_BASE_STATUS_H_
