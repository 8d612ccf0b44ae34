// weir::Result<T>: the control-plane return type (setup, open, parse options).
// A small std::expected-like type: either a value or an Error with an
// errno-style code and a human-readable context string.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace weir {

struct Error {
    std::error_code code;
    std::string context;

    /// "context: strerror(code)" or just the context when no code is set.
    [[nodiscard]] std::string message() const
    {
        if (!code)
            return context;
        return context + ": " + code.message();
    }
};

/// An Error from an errno value (positive or negative) and a context.
inline Error from_errno(int err, std::string context)
{
    if (err < 0)
        err = -err;
    return Error{std::error_code(err, std::generic_category()), std::move(context)};
}

/// An Error with EINVAL and a context: for bad options and bad input.
inline Error invalid(std::string context)
{
    return Error{std::make_error_code(std::errc::invalid_argument), std::move(context)};
}

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error err) : v_(std::move(err)) {}

    [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    T& operator*() & { return value(); }

    [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error err) : err_(std::move(err)), ok_(false) {}

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    [[nodiscard]] const Error& error() const { return err_; }

private:
    Error err_{};
    bool ok_ = true;
};

} // namespace weir
