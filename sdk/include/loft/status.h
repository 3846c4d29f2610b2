// Errors as values at the plugin boundary: a Status (code + message) and StatusOr<T>.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace loft {

enum class StatusCode { kOk = 0, kInvalidArgument, kNotFound, kFailedPrecondition, kInternal, kIoError };

// A success or an error with a message that says what, where and how to fix. Cheap to copy; thread-compatible.
// Plain value type: no method throws (other than std::bad_alloc when copying a message), blocks or touches CUDA.
// Across the plugin boundary it travels by value, so each side owns its copy.
class Status {
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

// A value or the Status that explains why there is none. Owns its value. value() on an error is undefined
// behaviour: check ok() first. Nothing throws (beyond T's own copy and move).
template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}                 // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {}         // NOLINT: must be an error
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }
  const T& value() const& { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace loft
