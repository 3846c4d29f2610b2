// Errors as values at the plugin boundary: a Status (code + message) and StatusOr<T>.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace loft {

enum class StatusCode { kOk = 0, kInvalidArgument, kNotFound, kFailedPrecondition, kInternal, kIoError };

// A success or an error with a message that says what, where and how to fix. Cheap to copy; thread-compatible.
// Plain value type: no method throws (other than std::bad_alloc when copying a message), blocks or touches CUDA.
// Across the plugin boundary it travels by value, so each side owns its copy.
// [[nodiscard]]: a call that returns a Status and whose result is ignored is a compiler warning.
class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(StatusCode code, std::string message) { return Status(code, std::move(message)); }
  static Status InvalidArgument(std::string m) { return Error(StatusCode::kInvalidArgument, std::move(m)); }
  static Status NotFound(std::string m) { return Error(StatusCode::kNotFound, std::move(m)); }
  static Status FailedPrecondition(std::string m) { return Error(StatusCode::kFailedPrecondition, std::move(m)); }
  static Status Internal(std::string m) { return Error(StatusCode::kInternal, std::move(m)); }
  static Status IoError(std::string m) { return Error(StatusCode::kIoError, std::move(m)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Thrown by StatusOr::value() when there is no value: a programming error (check ok() first), never a user error.
class BadStatusOrAccess : public std::logic_error {
 public:
  explicit BadStatusOrAccess(const Status& status)
      : std::logic_error("StatusOr::value() called on an error: " + status.message()) {}
};

// A value or the Status that explains why there is none. Owns its value. Constructed from an OK status (which
// explains nothing), it holds a kInternal error saying so instead. value() on an error throws BadStatusOrAccess;
// nothing else throws (beyond T's own copy and move). Never blocks, never touches CUDA.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status)                           // NOLINT: implicit by design; must be an error
      : status_(status.ok() ? Status::Internal("StatusOr was given an OK status and no value (a loft bug)")
                            : std::move(status)) {}
  bool ok() const { return value_.has_value(); }
  // The error; OK when there is a value.
  const Status& status() const { return status_; }
  T& value() & {
    check();
    return *value_;
  }
  T&& value() && {
    check();
    return std::move(*value_);
  }
  const T& value() const& {
    check();
    return *value_;
  }

 private:
  void check() const {
    if (!value_.has_value()) throw BadStatusOrAccess(status_);
  }
  Status status_;
  std::optional<T> value_;
};

}  // namespace loft
